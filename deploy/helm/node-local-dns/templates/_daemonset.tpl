{{/* One node-local-dns DaemonSet. Argument: dict "ctx" (the root context) "standby" (bool).
The primary (daemonset.yaml) sets up and maintains the interface and the iptables rules; the
standby (daemonset-standby.yaml, standby.enabled) runs with -standby and serves the same
addresses beside it. Both pods share the ConfigMap, the ServiceAccount and the hostPath
peer directory; each has its own HTTP ports and its own update schedule (docs/zero-downtime.md). */}}
{{- define "node-local-dns.daemonset" -}}
{{- $ := .ctx -}}
{{- $v := $.Values -}}
{{- $standby := .standby -}}
{{- $ports := ternary $v.standby.ports $v.ports $standby -}}
{{- $strategy := ternary $v.standby.updateStrategy $v.updateStrategy $standby -}}
{{- $surge := eq $strategy.type "Surge" -}}
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: {{ ternary (include "node-local-dns.standbyFullname" $) (include "node-local-dns.fullname" $) $standby }}
  namespace: {{ $.Release.Namespace }}
  labels:
    {{- ternary (include "node-local-dns.standbyLabels" $) (include "node-local-dns.labels" $) $standby | nindent 4 }}
spec:
  selector:
    matchLabels:
      {{- ternary (include "node-local-dns.standbySelectorLabels" $) (include "node-local-dns.selectorLabels" $) $standby | nindent 6 }}
  updateStrategy:
  {{- if eq $strategy.type "OnDelete" }}
    type: OnDelete
  {{- else if $surge }}
    # New pod first, old pod removed once the new one is ready.
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 1
      maxUnavailable: 0
  {{- else }}
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: {{ $strategy.maxUnavailable }}
      maxSurge: 0
  {{- end }}
  template:
    metadata:
      labels:
        {{- ternary (include "node-local-dns.standbySelectorLabels" $) (include "node-local-dns.selectorLabels" $) $standby | nindent 8 }}
        {{- with $v.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        prometheus.io/scrape: "true"
        prometheus.io/port: {{ $ports.metrics | quote }}
        {{- if not $standby }}
        # Roll the pods when the Corefile changes (the agent also reloads it in place). Not on
        # the standby: it reloads in place, and rolling it together with the primary would
        # stop both pods of a node at once.
        checksum/corefile: {{ include "node-local-dns.corefile" $ | sha256sum }}
        {{- end }}
        {{- with $v.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      priorityClassName: {{ $v.priorityClassName }}
      serviceAccountName: {{ include "node-local-dns.serviceAccountName" $ }}
      automountServiceAccountToken: false
      hostNetwork: true
      dnsPolicy: Default
      enableServiceLinks: true
      terminationGracePeriodSeconds: {{ $v.terminationGracePeriodSeconds }}
      {{- with $v.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: node-cache
          image: {{ include "node-local-dns.image" $ }}
          imagePullPolicy: {{ $v.image.pullPolicy }}
          args:
            {{- include "node-local-dns.args" (dict "ctx" $ "standby" $standby) | trim | nindent 12 }}
          env:
            - name: {{ include "node-local-dns.portEnv.health" $ }}
              value: {{ $ports.health | quote }}
            - name: {{ include "node-local-dns.portEnv.ready" $ }}
              value: {{ $ports.ready | quote }}
            - name: {{ include "node-local-dns.portEnv.metrics" $ }}
              value: {{ $ports.metrics | quote }}
          securityContext:
            allowPrivilegeEscalation: false
            capabilities:
              add:
                - NET_ADMIN
          resources:
            {{- toYaml $v.resources | nindent 12 }}
          {{- if not (or $standby $surge) }}
          # Host ports (hostNetwork). The standby declares none (port 53 is declared here), so
          # both pods fit on a node.
          ports:
            - name: dns
              containerPort: 53
              protocol: UDP
            - name: dns-tcp
              containerPort: 53
              protocol: TCP
            - name: metrics
              containerPort: {{ $ports.metrics }}
              protocol: TCP
            - name: agent-metrics
              containerPort: {{ $ports.agentMetrics }}
              protocol: TCP
            - name: health
              containerPort: {{ $ports.health }}
              protocol: TCP
            - name: ready
              containerPort: {{ $ports.ready }}
              protocol: TCP
          {{- end }}
          livenessProbe:
            httpGet:
              host: {{ $v.localDns | quote }}
              path: /health
              port: {{ $ports.health }}
            {{- toYaml $v.livenessProbe | nindent 12 }}
          readinessProbe:
            httpGet:
              host: {{ $v.localDns | quote }}
              path: /ready
              port: {{ $ports.ready }}
            {{- toYaml $v.readinessProbe | nindent 12 }}
          volumeMounts:
            - name: xtables-lock
              mountPath: /run/xtables.lock
              readOnly: false
            - name: peers
              mountPath: {{ include "node-local-dns.peerDir" $ }}
            - name: config-volume
              mountPath: /etc/coredns
            - name: kube-dns-config
              mountPath: /etc/kube-dns
      volumes:
        - name: xtables-lock
          hostPath:
            path: /run/xtables.lock
            type: FileOrCreate
        # -peerdir: one unix socket per running instance; an instance removes the interface
        # and the rules on exit only when no other instance on the node is alive.
        - name: peers
          hostPath:
            path: {{ include "node-local-dns.peerDir" $ }}
            type: DirectoryOrCreate
        - name: kube-dns-config
          configMap:
            name: kube-dns
            optional: true
        - name: config-volume
          configMap:
            name: {{ include "node-local-dns.fullname" $ }}
            items:
              - key: Corefile
                path: Corefile.base
{{- end -}}
