{{/* Names, labels and the checks every template relies on. */}}

{{- define "kubewatch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's full name: <release>-kubewatch, or the release name if it holds "kubewatch". */}}
{{- define "kubewatch.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Cluster-scoped objects (ClusterRole, ClusterRoleBinding) carry the namespace too, so
two releases of the same name in different namespaces do not collide. */}}
{{- define "kubewatch.clusterName" -}}
{{- printf "%s-%s" .Release.Namespace (include "kubewatch.fullname" .) -}}
{{- end -}}

{{- define "kubewatch.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kubewatch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubewatch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "kubewatch.labels" -}}
helm.sh/chart: {{ include "kubewatch.chart" . }}
{{ include "kubewatch.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "kubewatch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "kubewatch.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "kubewatch.secretName" -}}
{{- printf "%s-env" (include "kubewatch.fullname" .) -}}
{{- end -}}

{{- define "kubewatch.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The port of kubewatch's HTTP server (health and metrics): config.server.port, or ""
when there is none (absent, or 0: a random port nothing could probe). */}}
{{- define "kubewatch.serverPort" -}}
{{- $server := (.Values.config).server -}}
{{- if and (kindIs "map" $server) $server.port -}}{{- $server.port -}}{{- end -}}
{{- end -}}

{{/* Checks across values that the schema cannot express; each fails with what to do. */}}
{{- define "kubewatch.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not (dig "leaderElection" "enabled" false .Values.config)) -}}
{{- fail (printf "replicaCount is %d but config.leaderElection.enabled is not true: every replica would report every change. Set config.leaderElection.enabled: true (one replica delivers, the others stand by), or replicaCount: 1." (int .Values.replicaCount)) -}}
{{- end -}}
{{- $port := include "kubewatch.serverPort" . -}}
{{- if and .Values.metrics.enabled (not $port) -}}
{{- fail "metrics.enabled needs kubewatch's HTTP server: set config.server.port (e.g. 8080), where kubewatch serves /metrics, /healthz and /readyz" -}}
{{- end -}}
{{- if and .Values.metrics.serviceMonitor.enabled (not .Values.metrics.enabled) -}}
{{- fail "metrics.serviceMonitor.enabled needs metrics.enabled: true (the ServiceMonitor scrapes the metrics Service)" -}}
{{- end -}}
{{- if and .Values.persistence.enabled .Values.persistence.existingClaim (include "kubewatch.statefulSet" .) -}}
{{- fail (printf "persistence.existingClaim is one volume for one Pod, but replicaCount is %d: every replica needs a state of its own. Unset existingClaim (each replica then gets a claim from the StatefulSet's volumeClaimTemplates), or replicaCount: 1." (int .Values.replicaCount)) -}}
{{- end -}}
{{- $stateDir := clean (include "kubewatch.stateDir" .) -}}
{{- if or (eq $stateDir "/") (eq $stateDir "/tmp") (eq $stateDir "/etc/kubewatch") (hasPrefix "/etc/kubewatch/" $stateDir) (hasPrefix "/tmp/" $stateDir) -}}
{{- fail (printf "config.state.path %s would share a mount with the config (/etc/kubewatch) or the scratch space (/tmp): pick a directory of its own, e.g. /var/lib/kubewatch (the default)" $stateDir) -}}
{{- end -}}
{{- include "kubewatch.checkEnv" . -}}
{{- end -}}

{{/* Every ${VAR} in config must be set by secretEnv, extraEnv or the downward API, unless
an existingSecret may hold it: kubewatch refuses to start with an unset variable, and this
says so at install time instead of in a crash-looping Pod. "$${" is kubewatch's escape for
a literal "${" and is skipped. */}}
{{- define "kubewatch.checkEnv" -}}
{{- if not .Values.existingSecret -}}
{{- $text := regexReplaceAll "\\$\\$\\{" (toYaml .Values.config) "" -}}
{{- $provided := list "POD_NAME" "POD_NAMESPACE" "POD_UID" -}}
{{- range $name, $_ := .Values.secretEnv -}}{{- $provided = append $provided $name -}}{{- end -}}
{{- range .Values.extraEnv -}}{{- $provided = append $provided .name -}}{{- end -}}
{{- $missing := list -}}
{{- range regexFindAll "\\$\\{[A-Za-z_][A-Za-z0-9_]*\\}" $text -1 -}}
{{- $var := trimSuffix "}" (trimPrefix "${" .) -}}
{{- if not (has $var $provided) -}}{{- $missing = append $missing (printf "${%s}" $var) -}}{{- end -}}
{{- end -}}
{{- if $missing -}}
{{- fail (printf "config references %s but nothing sets it: add it to secretEnv (the chart creates a Secret), to extraEnv, or name an existingSecret that holds it" (join ", " (uniq $missing | sortAlpha))) -}}
{{- end -}}
{{- end -}}
{{- end -}}
