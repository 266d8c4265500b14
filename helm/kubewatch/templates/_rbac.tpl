{{/*
RBAC derived from config: what kubewatch lists and watches, and where.

kubewatch.rbacPlan renders YAML:

  cluster:              # ClusterRole: API group -> resources (get, list, watch)
    apps: [deployments]
  namespaces:           # a Role in each namespace: namespace -> API group -> resources
    shop:
      "": [configmaps]
  self:                 # what kubewatch needs for itself: namespace -> PolicyRules
    monitoring:         #   its Lease (config.leaderElection) and its own Events
      - {apiGroups: [coordination.k8s.io], resources: [leases], verbs: [create]}

It mirrors kubewatch's own planning (kubewatch/plan.py): a namespaced resource is watched
once per namespace when the global and the resource's namespaces.include hold only plain
names (their intersection when both are set, minus plain names in exclude), otherwise
with one cluster-wide watch. Cluster-scoped resources are always watched cluster-wide.
Namespaces are read when a namespaceSelector (global or per resource) needs their labels.
pods/log is granted (where its Pods are watched) only to a resource whose health sets
logLines above 0.
*/}}
{{- define "kubewatch.rbacPlan" -}}
{{- $config := .Values.config | default dict -}}
{{- $kinds := (.Files.Get "files/kinds.yaml" | fromYaml).kinds -}}
{{- $extra := .Values.rbac.extraRules | default list -}}
{{- $global := $config.namespaces | default dict -}}
{{- $gInclude := $global.include | default list -}}
{{- $gExclude := $global.exclude | default list -}}
{{- $plain := "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" -}}
{{- $cluster := dict -}}
{{- $namespaces := dict -}}
{{- $selector := $config.namespaceSelector -}}
{{- range $index, $rc := $config.resources | default list -}}
{{- $where := printf "config.resources[%d]" (int $index) -}}
{{- $r := include "kubewatch.resolveKind" (dict "rc" $rc "where" $where "kinds" $kinds "extra" $extra) | fromYaml -}}
{{- if $rc.namespaceSelector -}}{{- $selector = true -}}{{- end -}}
{{- $scope := list -}}
{{- if $r.namespaced -}}
{{- $own := $rc.namespaces | default dict -}}
{{- $oInclude := $own.include | default list -}}
{{- $excluded := list -}}
{{- range concat $gExclude ($own.exclude | default list) -}}
{{- if regexMatch $plain . -}}{{- $excluded = append $excluded . -}}{{- end -}}
{{- end -}}
{{- $allPlain := true -}}
{{- range concat $gInclude $oInclude -}}
{{- if not (regexMatch $plain .) -}}{{- $allPlain = false -}}{{- end -}}
{{- end -}}
{{- if and (or $gInclude $oInclude) $allPlain -}}
{{- $names := $oInclude | default $gInclude -}}
{{- if and $gInclude $oInclude -}}
{{- $names = list -}}
{{- range $oInclude -}}{{- if has . $gInclude -}}{{- $names = append $names . -}}{{- end -}}{{- end -}}
{{- if not $names -}}
{{- fail (printf "%s.namespaces.include: none of these namespaces is in the global namespaces.include" $where) -}}
{{- end -}}
{{- end -}}
{{- range uniq $names -}}
{{- if not (has . $excluded) -}}{{- $scope = append $scope . -}}{{- end -}}
{{- end -}}
{{- else -}}
{{- $scope = list "" -}}
{{- end -}}
{{- else -}}
{{- $scope = list "" -}}
{{- end -}}
{{- $res := $r.resources -}}
{{- $health := $rc.health | default dict -}}
{{- if and (gt (int ($health.logLines | default 0)) 0) (has "pods" $r.resources) -}}
{{- $res = append $res "pods/log" -}}{{/* health.logLines: alerts carry container logs */}}
{{- end -}}
{{- range $ns := $scope -}}
{{- $target := $cluster -}}
{{- if $ns -}}
{{- if not (hasKey $namespaces $ns) -}}{{- $_ := set $namespaces $ns dict -}}{{- end -}}
{{- $target = get $namespaces $ns -}}
{{- end -}}
{{- range $group := $r.groups -}}
{{- $_ := set $target $group (concat (get $target $group | default list) $res | uniq | sortAlpha) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if $selector -}}
{{- $_ := set $cluster "" (append (get $cluster "" | default list) "namespaces" | uniq | sortAlpha) -}}
{{- end -}}
{{- $self := dict -}}
{{- $election := $config.leaderElection | default dict -}}
{{- if $election.enabled -}}
{{- $leaseNs := $election.namespace | default .Release.Namespace -}}
{{- $leaseName := $election.leaseName | default "kubewatch" -}}
{{- $rules := list
      (dict "apiGroups" (list "coordination.k8s.io") "resources" (list "leases") "verbs" (list "create"))
      (dict "apiGroups" (list "coordination.k8s.io") "resources" (list "leases") "resourceNames" (list $leaseName) "verbs" (list "get" "update")) -}}
{{- $_ := set $self $leaseNs (concat (get $self $leaseNs | default list) $rules) -}}
{{- end -}}
{{- if .Values.rbac.emitEvents -}}
{{- $rules := list (dict "apiGroups" (list "") "resources" (list "events") "verbs" (list "create" "patch")) -}}
{{- $_ := set $self .Release.Namespace (concat (get $self .Release.Namespace | default list) $rules) -}}
{{- end -}}
{{- toYaml (dict "cluster" $cluster "namespaces" $namespaces "self" $self) -}}
{{- end -}}

{{/*
kubewatch.resolveKind: one config.resources[i] -> {groups, resources, namespaced}, the way
kubewatch's discovery would resolve it (kube/discovery.py), from the kind table
(files/kinds.yaml) and rbac.extraRules instead of a live cluster:

1. an rbac.extraRules entry whose kind (or one of its resources) is the name, and whose
   apiGroups hold the group when one is given, wins;
2. else the first kind-table entry answering to the name (Kind, plural, singular or short
   name, case-insensitive) in the given group, if any;
3. else, when a group is given (apiVersion: group/version, or name.group), a custom
   resource is assumed: namespaced, its plural guessed like Kubernetes does (lowercase
   kind + "s"; "-s" -> "-ses", "-y" -> "-ies"); a lowercase name ending in "s" is taken as
   the plural itself. rbac.extraRules corrects a wrong guess;
4. else the name is an unknown bare kind: rendering fails, pointing to rbac.extraRules.
*/}}
{{- define "kubewatch.resolveKind" -}}
{{- $rc := .rc -}}
{{- $where := .where -}}
{{- $written := trim (toString (default "" $rc.kind)) -}}
{{- if not $written -}}
{{- fail (printf "%s.kind is required" $where) -}}
{{- end -}}
{{- $head := $written -}}
{{- $group := "" -}}
{{- $hasGroup := false -}}
{{- $apiVersion := trim (toString (default "" $rc.apiVersion)) -}}
{{- if $apiVersion -}}
{{- $hasGroup = true -}}
{{- if contains "/" $apiVersion -}}{{- $group = regexReplaceAll "/[^/]*$" $apiVersion "" -}}{{- end -}}
{{- else if contains "." $written -}}
{{- $parts := splitn "." 2 $written -}}
{{- $head = $parts._0 -}}
{{- $hasGroup = true -}}
{{- $group = lower $parts._1 -}}
{{- if regexMatch "^v[0-9]+((alpha|beta)[0-9]+)?\\.." $group -}}
{{- $group = regexReplaceAll "^[^.]*\\." $group "" -}}
{{- end -}}
{{- end -}}
{{- $name := lower $head -}}
{{- $found := dict -}}
{{- range $rule := .extra -}}
{{- $ruleKind := lower (toString (default "" $rule.kind)) -}}
{{- $names := append ($rule.resources | default list) $ruleKind -}}
{{- if and (not $found) (has $name $names) (or (not $hasGroup) (has $group ($rule.apiGroups | default list))) -}}
{{- $namespaced := true -}}
{{- if hasKey $rule "namespaced" -}}{{- $namespaced = $rule.namespaced -}}{{- end -}}
{{- $found = dict "groups" $rule.apiGroups "resources" $rule.resources "namespaced" $namespaced -}}
{{- end -}}
{{- end -}}
{{- if not $found -}}
{{- range $entry := .kinds -}}
{{- $names := concat (list (lower $entry.kind) $entry.plural) ($entry.short | default list) -}}
{{- if and (not $found) (has $name $names) (or (not $hasGroup) (eq $group $entry.group)) -}}
{{- $found = dict "groups" (list $entry.group) "resources" (list $entry.plural) "namespaced" $entry.namespaced -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and (not $found) $hasGroup -}}
{{- $plural := $name -}}
{{- if or (regexMatch "^[A-Z]" $head) (not (hasSuffix "s" $name)) -}}
{{- if hasSuffix "s" $name -}}
{{- $plural = printf "%ses" $name -}}
{{- else if hasSuffix "y" $name -}}
{{- $plural = printf "%sies" (trimSuffix "y" $name) -}}
{{- else -}}
{{- $plural = printf "%ss" $name -}}
{{- end -}}
{{- end -}}
{{- $found = dict "groups" (list $group) "resources" (list $plural) "namespaced" true -}}
{{- end -}}
{{- if not $found -}}
{{- fail (printf "%s.kind: %q is not a built-in kind the chart knows, so it cannot derive RBAC for it. If it is a custom resource, name its group (kind: <plural>.<group>, or add apiVersion: <group>/<version>), or describe it in rbac.extraRules, e.g. - {kind: %s, apiGroups: [example.com], resources: [%ss], namespaced: true}" $where $written $written $name) -}}
{{- end -}}
{{- toYaml $found -}}
{{- end -}}

{{/* PolicyRules (get, list, watch) from an API group -> resources map, sorted by group. */}}
{{- define "kubewatch.readRules" -}}
{{- range $group := keys . | sortAlpha }}
- apiGroups: [{{ $group | quote }}]
  resources: {{ toJson (get $ $group) }}
  verbs: ["get", "list", "watch"]
{{- end }}
{{- end -}}
