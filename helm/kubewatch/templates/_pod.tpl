{{/* The Pod both workloads run (the Deployment of one replica, the StatefulSet of several). */}}

{{/* Where kubewatch keeps state.db: config.state.path, else /var/lib/kubewatch. */}}
{{- define "kubewatch.stateDir" -}}
{{- dig "state" "path" "" .Values.config | default "/var/lib/kubewatch" -}}
{{- end -}}

{{/* "true" when the chart runs a StatefulSet: several replicas, each with its own state. */}}
{{- define "kubewatch.statefulSet" -}}
{{- if gt (int .Values.replicaCount) 1 -}}true{{- end -}}
{{- end -}}

{{/* The spec of a state claim: the chart's PersistentVolumeClaim, or a StatefulSet's
volumeClaimTemplate. storageClass "-" asks for no class at all (storageClassName ""),
unset for the cluster's default class. */}}
{{- define "kubewatch.claimSpec" -}}
{{- $class := .Values.persistence.storageClass | default "" -}}
accessModes:
  {{- toYaml .Values.persistence.accessModes | nindent 2 }}
{{- if eq $class "-" }}
storageClassName: ""
{{- else if $class }}
storageClassName: {{ $class | quote }}
{{- end }}
resources:
  requests:
    storage: {{ .Values.persistence.size | quote }}
{{- end -}}

{{/* The state volume of the Pod; none when a volumeClaimTemplate provides it. */}}
{{- define "kubewatch.stateVolume" -}}
{{- if not .Values.persistence.enabled }}
# Without persistence the state outlives a container restart, not the Pod.
- name: state
  emptyDir:
    sizeLimit: {{ .Values.persistence.size | quote }}
{{- else if .Values.persistence.existingClaim }}
- name: state
  persistentVolumeClaim:
    claimName: {{ .Values.persistence.existingClaim }}
{{- else if not (include "kubewatch.statefulSet" .) }}
- name: state
  persistentVolumeClaim:
    claimName: {{ include "kubewatch.fullname" . }}-state
{{- end }}
{{- end -}}

{{- define "kubewatch.podTemplate" -}}
{{- $port := include "kubewatch.serverPort" . -}}
metadata:
  annotations:
    # A changed config (or secret) rolls the Pod: a rollout also restarts the watches
    # with the new Secret values, which an in-place reload (SIGHUP) cannot pick up.
    checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
    {{- if .Values.secretEnv }}
    checksum/secret: {{ include (print $.Template.BasePath "/secret.yaml") . | sha256sum }}
    {{- end }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  labels:
    {{- include "kubewatch.selectorLabels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "kubewatch.serviceAccountName" . }}
  automountServiceAccountToken: true
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  # fsGroup makes the state volume writable by kubewatch's UID.
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  containers:
    - name: kubewatch
      image: {{ include "kubewatch.image" . | quote }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - --log-level
        - {{ .Values.logLevel | quote }}
        - run
        - --config
        - /etc/kubewatch/config.yaml
        - --state-dir
        - {{ include "kubewatch.stateDir" . | quote }}
      env:
        - name: POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        - name: POD_NAMESPACE
          valueFrom:
            fieldRef:
              fieldPath: metadata.namespace
        - name: POD_UID
          valueFrom:
            fieldRef:
              fieldPath: metadata.uid
        {{- with .Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- if or .Values.secretEnv .Values.existingSecret }}
      envFrom:
        {{- if .Values.secretEnv }}
        - secretRef:
            name: {{ include "kubewatch.secretName" . }}
        {{- end }}
        {{- with .Values.existingSecret }}
        - secretRef:
            name: {{ . }}
        {{- end }}
      {{- end }}
      {{- if $port }}
      ports:
        - name: http
          containerPort: {{ $port }}
          protocol: TCP
      {{- end }}
      {{- if and $port .Values.probes.enabled }}
      # Liveness fails only on a wedged process, readiness only on the watches: a sink
      # that is down fails neither (its events wait in the spool).
      livenessProbe:
        httpGet:
          path: /healthz
          port: http
        {{- toYaml .Values.probes.liveness | nindent 8 }}
      readinessProbe:
        httpGet:
          path: /readyz
          port: http
        {{- toYaml .Values.probes.readiness | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      volumeMounts:
        - name: config
          mountPath: /etc/kubewatch
          readOnly: true
        - name: state
          mountPath: {{ include "kubewatch.stateDir" . | quote }}
        - name: tmp
          mountPath: /tmp
  volumes:
    - name: config
      configMap:
        name: {{ include "kubewatch.fullname" . }}
    {{- with include "kubewatch.stateVolume" . | trim }}
    {{- . | nindent 4 }}
    {{- end }}
    # The root filesystem is read-only; a small scratch space for libraries that need one.
    - name: tmp
      emptyDir:
        sizeLimit: 16Mi
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}
