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

{{- define "node-local-dns.commonLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "node-local-dns.labels" -}}
{{ include "node-local-dns.selectorLabels" . }}
{{ include "node-local-dns.commonLabels" . }}
{{- end -}}

{{/* The standby DaemonSet (standby.enabled): name and pod selector. The selector must not
overlap the primary's, whose k8s-app is node-local-dns (selectors are immutable, so the
primary's cannot be narrowed instead). */}}
{{- define "node-local-dns.standbyFullname" -}}
{{- printf "%s-standby" (include "node-local-dns.fullname" . | trunc 55 | trimSuffix "-") -}}
{{- end -}}

{{- define "node-local-dns.standbySelectorLabels" -}}
k8s-app: node-local-dns-standby
app.kubernetes.io/name: {{ include "node-local-dns.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: standby
{{- end -}}

{{- define "node-local-dns.standbyLabels" -}}
{{ include "node-local-dns.standbySelectorLabels" . }}
{{ include "node-local-dns.commonLabels" . }}
{{- end -}}

{{/* Environment variables the Corefile reads its HTTP ports from, so that the primary and the
standby share one Corefile and each binds its own ports. */}}
{{- define "node-local-dns.portEnv.health" -}}NODE_LOCAL_DNS_HEALTH_PORT{{- end -}}
{{- define "node-local-dns.portEnv.ready" -}}NODE_LOCAL_DNS_READY_PORT{{- end -}}
{{- define "node-local-dns.portEnv.metrics" -}}NODE_LOCAL_DNS_METRICS_PORT{{- end -}}

{{/* Directory (hostPath) where the instances of a node find each other (-peerdir). */}}
{{- define "node-local-dns.peerDir" -}}/run/node-local-dns{{- end -}}

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
{{- if .Values.standby.enabled -}}
{{- /* Both pods use the node's network: only the DNS port may be shared (SO_REUSEPORT). */ -}}
{{- $seen := dict -}}
{{- range $role, $ports := dict "ports" .Values.ports "standby.ports" .Values.standby.ports -}}
{{- range $name := list "health" "ready" "metrics" "agentMetrics" -}}
{{- $port := toString (index $ports $name) -}}
{{- if hasKey $seen $port -}}
{{- fail (printf "%s.%s and %s both use port %s: with standby.enabled every HTTP port of the two DaemonSets must differ (they share the node's network)" $role $name (get $seen $port) $port) -}}
{{- end -}}
{{- $_ := set $seen $port (printf "%s.%s" $role $name) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The cache's own addresses: localDns, then dualStack.localDns (dual-stack). */}}
{{- define "node-local-dns.localAddrs" -}}
{{- $d := .Values.dualStack | default dict -}}
{{- if ne (empty $d.localDns) (empty $d.dnsServer) -}}
{{- fail "dualStack.localDns and dualStack.dnsServer: set both (dual-stack) or neither" -}}
{{- end -}}
{{- $l := list .Values.localDns -}}
{{- if $d.localDns -}}{{- $l = append $l $d.localDns -}}{{- end -}}
{{- toJson $l -}}
{{- end -}}

{{/* The kube-dns ClusterIPs: dnsServer, then dualStack.dnsServer. */}}
{{- define "node-local-dns.dnsServers" -}}
{{- $d := .Values.dualStack | default dict -}}
{{- $l := list .Values.dnsServer -}}
{{- if $d.dnsServer -}}{{- $l = append $l $d.dnsServer -}}{{- end -}}
{{- toJson $l -}}
{{- end -}}

{{/* The addresses the cache serves: iptables and nftables modes also take over the kube-dns ClusterIP(s); IPVS mode cannot. */}}
{{- define "node-local-dns.serveAddrs" -}}
{{- $l := include "node-local-dns.localAddrs" . | fromJsonArray -}}
{{- if ne .Values.mode "ipvs" -}}
{{- $l = concat $l (include "node-local-dns.dnsServers" . | fromJsonArray) -}}
{{- end -}}
{{- toJson $l -}}
{{- end -}}

{{- define "node-local-dns.localip" -}}
{{- include "node-local-dns.serveAddrs" . | fromJsonArray | join "," -}}
{{- end -}}

{{- define "node-local-dns.bind" -}}
{{- include "node-local-dns.serveAddrs" . | fromJsonArray | join " " -}}
{{- end -}}

{{/* An IP as the host of HOST:PORT: IPv6 in brackets, as CoreDNS needs. */}}
{{- define "node-local-dns.hostForPort" -}}
{{- if contains ":" . -}}[{{ . }}]{{- else -}}{{ . }}{{- end -}}
{{- end -}}

{{/* Where cluster-domain misses go: in iptables mode the agent fills in the
kube-dns-upstream ClusterIP (the kube-dns ClusterIP itself is intercepted); in IPVS mode
the kube-dns ClusterIP(s) are reachable as is. */}}
{{- define "node-local-dns.clusterUpstream" -}}
{{- if eq .Values.mode "ipvs" -}}
{{- include "node-local-dns.dnsServers" . | fromJsonArray | join " " -}}
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
replaces __PILLAR__CLUSTER__DNS__ and __PILLAR__UPSTREAM__SERVERS__ at start-up. The HTTP
ports are {$VAR}s set by each DaemonSet's env (ports.* for the primary, standby.ports.* for
the standby), so both share this Corefile. */}}
{{- define "node-local-dns.corefile" -}}
{{- if .Values.corefile.override -}}
{{ .Values.corefile.override }}
{{- else -}}
{{- $c := .Values.corefile -}}
{{- $bind := include "node-local-dns.bind" . -}}
{{- $cluster := include "node-local-dns.clusterUpstream" . -}}
{{- $metrics := printf "{$%s}" (include "node-local-dns.portEnv.metrics" .) -}}
{{- $health := printf "{$%s}" (include "node-local-dns.portEnv.health" .) -}}
{{- $ready := printf "{$%s}" (include "node-local-dns.portEnv.ready" .) -}}
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
    health {{ include "node-local-dns.hostForPort" .Values.localDns }}:{{ $health }}
    ready {{ include "node-local-dns.hostForPort" .Values.localDns }}:{{ $ready }}
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
{{- with (.Values.dualStack | default dict).localDns }}
    health {{ include "node-local-dns.hostForPort" . }}:{{ $health }}
{{- end }}
    forward . __PILLAR__UPSTREAM__SERVERS__
    prometheus :{{ $metrics }}
}
{{- end -}}
{{- end -}}

{{/* Agent command line. Argument: dict "ctx" (the root context) "standby" (bool). The standby
adds -standby and its own -metrics-listen-address; -health-port stays the primary's (the port
the rules exempt from conntrack), so whichever instance is the last one out removes the same
rules (with updateStrategy.type=Surge, the old pod leaves them to the new one through -peerdir). */}}
{{- define "node-local-dns.args" -}}
{{- $v := .ctx.Values -}}
{{- $agentMetrics := ternary $v.standby.ports.agentMetrics $v.ports.agentMetrics .standby -}}
{{- if .standby }}
- -standby
{{- end }}
- -localip
- {{ include "node-local-dns.localip" .ctx | quote }}
- -conf
- /etc/Corefile
- -upstreamsvc
- {{ $v.agent.upstreamService | quote }}
- -health-port
- {{ $v.ports.health | quote }}
- -metrics-listen-address
- {{ printf "0.0.0.0:%v" $agentMetrics | quote }}
{{- if eq $v.mode "nftables" }}
- -rulesbackend
- nftables
{{- end }}
- -peerdir
- {{ include "node-local-dns.peerDir" .ctx }}
{{- if not $v.agent.setupInterface }}
- -setupinterface=false
{{- end }}
{{- if not $v.agent.setupIptables }}
- -setupiptables=false
{{- end }}
{{- if $v.agent.skipTeardown }}
- -skipteardown
{{- end }}
- -syncinterval
- {{ $v.agent.syncInterval | quote }}
{{- if gt (int $v.agent.workers) 0 }}
- -workers
- {{ $v.agent.workers | quote }}
{{- end }}
{{- range $v.agent.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end -}}
