{{/* Chart name, at most 63 characters. */}}
{{- define "node-local-dns.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name of the namespaced resources: fullnameOverride, else the release name when it
contains the chart name, else release-chart. */}}
{{- define "node-local-dns.fullname" -}}
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

{{/* Pod selector. k8s-app: node-local-dns is what the ServiceMonitor (jobLabel) and the
alerts expect: job="node-local-dns". */}}
{{- define "node-local-dns.selectorLabels" -}}
k8s-app: node-local-dns
app.kubernetes.io/name: {{ include "node-local-dns.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "node-local-dns.labels" -}}
{{ include "node-local-dns.selectorLabels" . }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "node-local-dns.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "node-local-dns.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "node-local-dns.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Checks that templates cannot express in values.schema.json. */}}
{{- define "node-local-dns.validate" -}}
{{- if ne .Release.Namespace .Values.kubeDnsNamespace -}}
{{- fail (printf "install node-local-dns into the kube-dns namespace %q (helm -n %s), not %q: the kube-dns-upstream Service and its environment variables only work there" .Values.kubeDnsNamespace .Values.kubeDnsNamespace .Release.Namespace) -}}
{{- end -}}
{{- end -}}

{{/* -localip: iptables mode also takes over the kube-dns ClusterIP; IPVS mode cannot. */}}
{{- define "node-local-dns.localip" -}}
{{- if eq .Values.mode "ipvs" -}}
{{- .Values.localDns -}}
{{- else -}}
{{- printf "%s,%s" .Values.localDns .Values.dnsServer -}}
{{- end -}}
{{- end -}}

{{- define "node-local-dns.bind" -}}
{{- if eq .Values.mode "ipvs" -}}
{{- .Values.localDns -}}
{{- else -}}
{{- printf "%s %s" .Values.localDns .Values.dnsServer -}}
{{- end -}}
{{- end -}}

{{/* Where cluster-domain misses go: in iptables mode the agent fills in the
kube-dns-upstream ClusterIP (the kube-dns ClusterIP itself is intercepted); in IPVS mode
the kube-dns ClusterIP is reachable as is. */}}
{{- define "node-local-dns.clusterUpstream" -}}
{{- if eq .Values.mode "ipvs" -}}
{{- .Values.dnsServer -}}
{{- else -}}
__PILLAR__CLUSTER__DNS__
{{- end -}}
{{- end -}}

{{/* resources.limits.memory in bytes ("256Mi" -> 268435456), 0 when unset. */}}
{{- define "node-local-dns.memoryLimitBytes" -}}
{{- $limit := toString (dig "limits" "memory" "" .Values.resources) -}}
{{- $bytes := 0 -}}
{{- if regexMatch "^[0-9]+$" $limit -}}
{{- $bytes = int64 $limit -}}
{{- else if ne $limit "" -}}
{{- $units := dict "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 -}}
{{- range $suffix, $factor := $units -}}
{{- $digits := trimSuffix $suffix $limit -}}
{{- if and (hasSuffix $suffix $limit) (regexMatch "^[0-9]+$" $digits) -}}
{{- $bytes = mul (int64 $digits) $factor -}}
{{- end -}}
{{- end -}}
{{- if eq (int64 $bytes) 0 -}}
{{- fail (printf "resources.limits.memory %q: use an integer with an optional Ki/Mi/Gi/Ti/k/M/G/T suffix" $limit) -}}
{{- end -}}
{{- end -}}
{{- $bytes -}}
{{- end -}}

{{/* The Corefile (ConfigMap key Corefile, mounted as /etc/coredns/Corefile.base). The agent
replaces __PILLAR__CLUSTER__DNS__ and __PILLAR__UPSTREAM__SERVERS__ at start-up. */}}
{{- define "node-local-dns.corefile" -}}
{{- if .Values.corefile.override -}}
{{ .Values.corefile.override }}
{{- else -}}
{{- $c := .Values.corefile -}}
{{- $bind := include "node-local-dns.bind" . -}}
{{- $cluster := include "node-local-dns.clusterUpstream" . -}}
{{- $metrics := .Values.ports.metrics -}}
{{ .Values.clusterDomain }}:53 {
    errors
{{- if $c.log }}
    log
{{- end }}
    cache {
        success {{ $c.cache.successSize }} {{ $c.cache.successTtl }}
        denial {{ $c.cache.denialSize }} {{ $c.cache.denialTtl }}
    }
    reload
    loop
    bind {{ $bind }}
{{- if $c.forceTcp }}
    forward . {{ $cluster }} {
        force_tcp
    }
{{- else }}
    forward . {{ $cluster }}
{{- end }}
    prometheus :{{ $metrics }}
    health {{ .Values.localDns }}:{{ .Values.ports.health }}
    ready {{ .Values.localDns }}:{{ .Values.ports.ready }}
}
{{- range $zone := list "in-addr.arpa" "ip6.arpa" }}
{{ $zone }}:53 {
    errors
{{- if $c.log }}
    log
{{- end }}
    cache {{ $c.cache.ttl }}
    reload
    loop
    bind {{ $bind }}
{{- if $c.forceTcp }}
    forward . {{ $cluster }} {
        force_tcp
    }
{{- else }}
    forward . {{ $cluster }}
{{- end }}
    prometheus :{{ $metrics }}
}
{{- end }}
.:53 {
    errors
{{- if $c.log }}
    log
{{- end }}
    cache {{ $c.cache.ttl }}
    reload
    loop
    bind {{ $bind }}
    forward . __PILLAR__UPSTREAM__SERVERS__
    prometheus :{{ $metrics }}
}
{{- end -}}
{{- end -}}

{{/* Agent command line, shared by the main and the standby container. */}}
{{- define "node-local-dns.args" -}}
- -localip
- {{ include "node-local-dns.localip" . | quote }}
- -conf
- /etc/Corefile
- -upstreamsvc
- {{ .Values.agent.upstreamService | quote }}
- -health-port
- {{ .Values.ports.health | quote }}
- -metrics-listen-address
- {{ printf "0.0.0.0:%v" .Values.ports.agentMetrics | quote }}
{{- if not .Values.agent.setupInterface }}
- -setupinterface=false
{{- end }}
{{- if not .Values.agent.setupIptables }}
- -setupiptables=false
{{- end }}
{{- if or .Values.agent.skipTeardown (eq .Values.updateStrategy.type "Surge") }}
- -skipteardown
{{- end }}
- -syncinterval
- {{ .Values.agent.syncInterval | quote }}
{{- if gt (int .Values.agent.workers) 0 }}
- -workers
- {{ .Values.agent.workers | quote }}
{{- end }}
{{- range .Values.agent.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end -}}

{{- define "node-local-dns.volumeMounts" -}}
- name: xtables-lock
  mountPath: /run/xtables.lock
  readOnly: false
- name: config-volume
  mountPath: /etc/coredns
- name: kube-dns-config
  mountPath: /etc/kube-dns
{{- end -}}
