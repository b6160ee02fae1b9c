{{/* The name of the release's objects, at most 63 characters. */}}
{{- define "cfscrub.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels that select the release's pods. */}}
{{- define "cfscrub.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: {{ .Values.mode }}
{{- end -}}

{{/* Labels of every object. */}}
{{- define "cfscrub.labels" -}}
{{ include "cfscrub.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "cfscrub.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* Fails the render on values that cannot work. */}}
{{- define "cfscrub.validate" -}}
{{- if not (has .Values.mode (list "kafka" "sidecar")) -}}
{{- fail (printf "invalid mode %q: expected kafka or sidecar" .Values.mode) -}}
{{- end -}}
{{- if eq .Values.mode "kafka" -}}
{{- if le (int .Values.terminationGracePeriodSeconds) (int .Values.kafka.gracePeriodSeconds) -}}
{{- fail (printf "invalid terminationGracePeriodSeconds %v: must be longer than kafka.gracePeriodSeconds (%v), or Kubernetes kills cfscrub before it commits" .Values.terminationGracePeriodSeconds .Values.kafka.gracePeriodSeconds) -}}
{{- end -}}
{{- if not .Values.kafka.inputTopics -}}
{{- fail "missing kafka.inputTopics: set at least one input topic, such as --set 'kafka.inputTopics={logs}'" -}}
{{- end -}}
{{- include "cfscrub.validateSasl" . -}}
{{- end -}}
{{- end -}}

{{/*
Fails the render on SASL settings that librdkafka rejects only when the
member starts. Without sasl.mechanism librdkafka uses GSSAPI, which
cfscrub's librdkafka is built without, and its error then says to
recompile librdkafka.
*/}}
{{- define "cfscrub.validateSasl" -}}
{{- $settings := .Values.kafka.settings | default dict -}}
{{- $names := keys $settings -}}
{{- range .Values.kafka.secretSettings -}}
{{- $names = append $names .setting -}}
{{- end -}}
{{- $protocol := index $settings "security.protocol" | default "" | toString | upper -}}
{{- if hasPrefix "SASL_" $protocol -}}
{{- if not (or (has "sasl.mechanism" $names) (has "sasl.mechanisms" $names)) -}}
{{- fail (printf "missing sasl.mechanism in kafka.settings: security.protocol %s needs one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER, or librdkafka falls back to GSSAPI, which cfscrub is built without" $protocol) -}}
{{- end -}}
{{- $mechanism := index $settings "sasl.mechanism" | default (index $settings "sasl.mechanisms") | default "" | toString | upper -}}
{{- if eq $mechanism "GSSAPI" -}}
{{- fail "invalid sasl.mechanism GSSAPI in kafka.settings: cfscrub's librdkafka is built without GSSAPI; use PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER" -}}
{{- end -}}
{{- if or (eq $mechanism "PLAIN") (hasPrefix "SCRAM-" $mechanism) -}}
{{- range list "sasl.username" "sasl.password" -}}
{{- if not (has . $names) -}}
{{- fail (printf "missing %s: sasl.mechanism %s needs it in kafka.settings or, for a secret, in kafka.secretSettings" . $mechanism) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The cfscrub container: probes, ports and security are the same in both modes. */}}
{{- define "cfscrub.container" -}}
- name: cfscrub
  image: {{ include "cfscrub.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args:
    {{- if eq .Values.mode "kafka" }}
    - kafka
    - --brokers
    - {{ .Values.kafka.brokers | quote }}
    - --group
    - {{ .Values.kafka.group | quote }}
    {{- range .Values.kafka.inputTopics }}
    - --input-topic
    - {{ . | quote }}
    {{- end }}
    - --output-topic
    - {{ .Values.kafka.outputTopic | quote }}
    - --grace-period
    - {{ .Values.kafka.gracePeriodSeconds | quote }}
    {{- if .Values.kafka.exactlyOnce }}
    - --exactly-once
    - --transactional-id
    - {{ printf "cfscrub-%s-$(POD_NAME)" .Values.kafka.group | quote }}
    {{- end }}
    {{- range $key, $value := .Values.kafka.settings }}
    - -X
    - {{ printf "%s=%v" $key $value | quote }}
    {{- end }}
    {{- range $index, $setting := .Values.kafka.secretSettings }}
    - -X
    - {{ printf "%s=$(CFSCRUB_KAFKA_SECRET_%d)" $setting.setting $index | quote }}
    {{- end }}
    {{- range .Values.kafka.extraArgs }}
    - {{ . | quote }}
    {{- end }}
    {{- else }}
    - follow
    {{- if .Values.sidecar.checkpoint }}
    - --checkpoint
    - /var/lib/cfscrub/follow.checkpoint
    {{- end }}
    {{- range .Values.sidecar.extraArgs }}
    - {{ . | quote }}
    {{- end }}
    {{- end }}
    - --metrics-listen
    - {{ printf "0.0.0.0:%v" .Values.metrics.port | quote }}
    {{- if eq .Values.mode "sidecar" }}
    {{- range .Values.sidecar.paths }}
    - {{ . | quote }}
    {{- end }}
    {{- end }}
  {{- if and (eq .Values.mode "kafka") (or .Values.kafka.secretSettings .Values.kafka.exactlyOnce) }}
  {{- /* Kubernetes replaces $(NAME) in args with these variables, so no secret is in the rendered manifest. */}}
  env:
    {{- if .Values.kafka.exactlyOnce }}
    - name: POD_NAME
      valueFrom:
        fieldRef:
          fieldPath: metadata.name
    {{- end }}
    {{- range $index, $setting := .Values.kafka.secretSettings }}
    - name: {{ printf "CFSCRUB_KAFKA_SECRET_%d" $index }}
      valueFrom:
        secretKeyRef:
          name: {{ $setting.secretName | quote }}
          key: {{ $setting.secretKey | quote }}
    {{- end }}
  {{- end }}
  ports:
    - name: metrics
      containerPort: {{ .Values.metrics.port }}
      protocol: TCP
  resources:
    {{- if eq .Values.mode "sidecar" }}
    {{- toYaml .Values.sidecar.resources | nindent 4 }}
    {{- else }}
    {{- toYaml .Values.resources | nindent 4 }}
    {{- end }}
  livenessProbe:
    httpGet:
      path: /healthz
      port: metrics
    periodSeconds: 10
    failureThreshold: 3
  readinessProbe:
    httpGet:
      path: /readyz
      port: metrics
    periodSeconds: 5
    failureThreshold: 3
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  {{- if eq .Values.mode "sidecar" }}
  volumeMounts:
    - name: app-logs
      mountPath: {{ .Values.sidecar.logDir }}
      readOnly: true
    {{- if .Values.sidecar.checkpoint }}
    - name: cfscrub-state
      mountPath: /var/lib/cfscrub
    {{- end }}
  {{- end }}
{{- end -}}


{{/* The application container of sidecar mode, with the log volume. */}}
{{- define "cfscrub.appContainer" -}}
{{- $app := .Values.sidecar.app -}}
- name: app
  image: {{ $app.image }}
  {{- with $app.command }}
  command:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $app.args }}
  args:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $app.env }}
  env:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $app.ports }}
  ports:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- range $probe := list "livenessProbe" "readinessProbe" "startupProbe" }}
  {{- with index $app $probe }}
  {{ $probe }}:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- end }}
  {{- with $app.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $app.securityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  volumeMounts:
    - name: app-logs
      mountPath: {{ .Values.sidecar.logDir }}
{{- end -}}
