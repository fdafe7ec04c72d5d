{{/* Name of the release's objects: "<release>" when it already contains the chart name. */}}
{{- define "kvb.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "kvb.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kubevast
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "kvb.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "kvb.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "kvb.controllerSA" -}}
{{- default (printf "%s-controller" (include "kvb.fullname" .)) .Values.serviceAccount.controllerName -}}
{{- end -}}

{{- define "kvb.nodeSA" -}}
{{- default (printf "%s-node" (include "kvb.fullname" .)) .Values.serviceAccount.nodeName -}}
{{- end -}}

{{- define "kvb.vmsSecret" -}}
{{- default (printf "%s-vms" (include "kvb.fullname" .)) .Values.vms.existingSecret -}}
{{- end -}}

{{/* Plugin directory under the kubelet root, where the node socket lives. */}}
{{- define "kvb.pluginDir" -}}
{{- printf "%s/plugins/%s" .Values.node.kubeletDir .Values.driverName -}}
{{- end -}}

{{/* Leader-election flags shared by the controller sidecars. */}}
{{- define "kvb.leaderElectionArgs" -}}
{{- with .Values.controller.leaderElection }}
{{- if .enabled }}
- --leader-election=true
- --leader-election-namespace=$(POD_NAMESPACE)
- --leader-election-lease-duration={{ .leaseDuration }}
- --leader-election-renew-deadline={{ .renewDeadline }}
- --leader-election-retry-period={{ .retryPeriod }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "kvb.podNamespaceEnv" -}}
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- end -}}

{{/* Security context of the unprivileged controller containers. */}}
{{- define "kvb.restrictedContainer" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end -}}

{{/* Cross-field checks that JSON Schema cannot phrase clearly. */}}
{{- define "kvb.validate" -}}
{{- if and (eq .Values.node.attachBackend "loop") (not .Values.node.loopBackingDir) -}}
{{- fail "node.loopBackingDir is required when node.attachBackend is \"loop\" (the host directory holding the storage core's <uuid>.img files)" -}}
{{- end -}}
{{- if not .Values.vms.existingSecret -}}
{{- if not .Values.vms.endpoint -}}
{{- fail "vms.endpoint is required unless vms.existingSecret names a Secret" -}}
{{- end -}}
{{- if and (not .Values.vms.apiToken) (not (and .Values.vms.username .Values.vms.password)) -}}
{{- fail "vms: set vms.username and vms.password, or vms.apiToken, or vms.existingSecret" -}}
{{- end -}}
{{- end -}}
{{- $defaults := 0 -}}
{{- range .Values.storageClasses -}}{{- if .default -}}{{- $defaults = add1 $defaults -}}{{- end -}}{{- end -}}
{{- if gt $defaults 1 -}}
{{- fail "storageClasses: at most one StorageClass may set default: true" -}}
{{- end -}}
{{- end -}}
