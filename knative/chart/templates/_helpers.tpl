{{/* Common labels (chart-only labels; the kustomize base carries the part-of label only). */}}
{{- define "streamspace.labels" -}}
app.kubernetes.io/part-of: streamspace
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The group values (api or controller) of a function: include "streamspace.group" (list $ $fn) */}}
{{- define "streamspace.groupName" -}}
{{- if eq .kind "http" -}}api{{- else -}}controller{{- end -}}
{{- end -}}

{{/* Image of a function: (list $ $name $fn) */}}
{{- define "streamspace.image" -}}
{{- $root := index . 0 -}}{{- $name := index . 1 -}}{{- $fn := index . 2 -}}
{{- $group := index $root.Values (include "streamspace.groupName" $fn) -}}
{{- $img := $fn.image | default dict -}}
{{- $repo := $img.repository | default (printf "%s-%s" $group.image.repository $name) -}}
{{- $tag := $img.tag | default $group.image.tag | default $root.Chart.AppVersion -}}
{{- printf "%s:%s" $repo $tag -}}
{{- end -}}

{{- define "streamspace.secretName" -}}
{{- .Values.secrets.existingSecret | default "streamspace-secrets" -}}
{{- end -}}

{{/* Where Sessions, Templates and the session pods live (Pod Security baseline): sessions.namespace,
     else "<release namespace>-sessions". */}}
{{- define "streamspace.sessionsNamespace" -}}
{{- .Values.sessions.namespace | default (printf "%s-sessions" .Release.Namespace) -}}
{{- end -}}
