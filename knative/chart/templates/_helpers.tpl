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

{{/* Only the Secret keys a workload uses, one env var each, and MOUNTED_SECRETS naming them (the process
     then requires only those): (list $ (list "KEY" ...)). Keys that may be absent are optional. */}}
{{- define "streamspace.secretEnv" -}}
{{- $root := index . 0 -}}{{- $keys := index . 1 -}}
- name: MOUNTED_SECRETS
  value: {{ join "," $keys | quote }}
{{- range $keys }}
- name: {{ . }}
  valueFrom:
    secretKeyRef:
      name: {{ include "streamspace.secretName" $root }}
      key: {{ . }}
      {{- if has . (list "DB_PASSWORD" "DATABASE_URL" "JWT_PREVIOUS_SECRETS" "OIDC_CLIENT_SECRET" "ADMIN_PASSWORD") }}
      optional: true
      {{- end }}
{{- end }}
{{- end -}}

{{/* The Secret keys of a function: the database's for all, JWT_SECRET for the HTTP functions (they verify
     access tokens), then its own values.functions.F.secretKeys. (list $ $fn) */}}
{{- define "streamspace.functionSecretKeys" -}}
{{- $fn := index . 1 -}}
{{- $keys := list "DB_PASSWORD" "DATABASE_URL" -}}
{{- if eq $fn.kind "http" -}}{{- $keys = concat $keys (list "JWT_SECRET" "JWT_PREVIOUS_SECRETS") -}}{{- end -}}
{{- $keys = concat $keys ($fn.secretKeys | default list) -}}
{{- toJson $keys -}}
{{- end -}}
