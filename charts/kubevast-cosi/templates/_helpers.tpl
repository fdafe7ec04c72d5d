{{- define "kvc.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "kvc.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kubevast
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "kvc.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "kvc.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "kvc.sa" -}}
{{- default (include "kvc.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "kvc.vmsSecret" -}}
{{- default (printf "%s-vms" (include "kvc.fullname" .)) .Values.vms.existingSecret -}}
{{- end -}}

{{- define "kvc.restrictedContainer" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end -}}

{{- define "kvc.validate" -}}
{{- if not .Values.vms.existingSecret -}}
{{- if not .Values.vms.endpoint -}}
{{- fail "vms.endpoint is required unless vms.existingSecret names a Secret" -}}
{{- end -}}
{{- if and (not .Values.vms.apiToken) (not (and .Values.vms.username .Values.vms.password)) -}}
{{- fail "vms: set vms.username and vms.password, or vms.apiToken, or vms.existingSecret" -}}
{{- end -}}
{{- end -}}
{{- end -}}
