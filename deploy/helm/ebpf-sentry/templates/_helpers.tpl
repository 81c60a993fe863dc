{{- define "ebpf-sentry.name" -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ebpf-sentry.labels" -}}
app.kubernetes.io/name: ebpf-sentry
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "ebpf-sentry.selector" -}}
app.kubernetes.io/name: ebpf-sentry
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
