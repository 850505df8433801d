/**
 * Test helpers for Kubernetes manifests: YAML parsing and validation against the Kubernetes
 * OpenAPI schemas (kubernetes-models 5.1: ajv validators generated from the API's OpenAPI spec
 * of a current release, with 1.34+ fields such as PodSpec.hostnameOverride and
 * Container.restartPolicyRules; @kubernetes-models/prometheus-operator for the
 * monitoring.coreos.com CRDs). Like the API server without strict field validation, these
 * schemas do not reject unknown fields; the tests assert the fields that matter explicitly.
 */
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { ConfigMap, Service, ServiceAccount } from 'kubernetes-models/v1';
import { DaemonSet } from 'kubernetes-models/apps/v1';
import { PrometheusRule, ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** A parsed manifest: any object with apiVersion and kind. */
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: unknown;
}

/** Parses a multi-document YAML stream; throws on any YAML error or a document that is not an object with apiVersion/kind. */
export function parseManifests(text: string, source: string): K8sObject[] {
  const out: K8sObject[] = [];
  for (const doc of parseAllDocuments(text, { prettyErrors: true })) {
    if (doc.errors.length > 0) throw new Error(`${source}: ${doc.errors.map((e) => e.message).join('; ')}`);
    const value: unknown = doc.toJS({ maxAliasCount: 0 });
    if (value === null || value === undefined) continue;
    if (typeof value !== 'object' || Array.isArray(value)) throw new Error(`${source}: a document is not a mapping`);
    const obj = value as Partial<K8sObject>;
    if (typeof obj.apiVersion !== 'string' || typeof obj.kind !== 'string') {
      throw new Error(`${source}: a document has no apiVersion/kind`);
    }
    out.push(obj as K8sObject);
  }
  return out;
}

type Model = { validate(): void };
const MODELS: Record<string, (obj: K8sObject) => Model> = {
  'v1/ServiceAccount': (o) => new ServiceAccount(o as never),
  'v1/Service': (o) => new Service(o as never),
  'v1/ConfigMap': (o) => new ConfigMap(o as never),
  'apps/v1/DaemonSet': (o) => new DaemonSet(o as never),
  'monitoring.coreos.com/v1/ServiceMonitor': (o) => new ServiceMonitor(o as never),
  'monitoring.coreos.com/v1/PrometheusRule': (o) => new PrometheusRule(o as never),
};

/** Validates one object against its kind's schema; throws with the schema errors. */
export function validateObject(obj: K8sObject): void {
  const key = `${obj.apiVersion}/${obj.kind}`;
  const make = MODELS[key];
  if (make === undefined) throw new Error(`no schema for ${key} (${obj.metadata?.name})`);
  try {
    make(obj).validate();
  } catch (err) {
    throw new Error(`${key} ${obj.metadata?.name}: ${(err as Error).message}`);
  }
}

/** The single object of a kind (and name, when given); throws when absent or ambiguous. */
export function findOne<T = K8sObject>(objs: K8sObject[], kind: string, name?: string): T {
  const hits = objs.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (hits.length !== 1) throw new Error(`expected one ${kind}${name ? ` ${name}` : ''}, found ${hits.length}`);
  return hits[0] as T;
}

export interface ContainerPort {
  name?: string;
  containerPort: number;
  protocol?: string;
}

export interface HttpProbe {
  httpGet: { host?: string; path: string; port: number | string };
}

export interface Container {
  name: string;
  image: string;
  args?: string[];
  env?: Array<{ name: string; value?: string }>;
  ports?: ContainerPort[];
  livenessProbe?: HttpProbe;
  readinessProbe?: HttpProbe;
  securityContext?: { privileged?: boolean; capabilities?: { add?: string[]; drop?: string[] } };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  volumeMounts?: Array<{ name: string; mountPath: string }>;
}

export interface DaemonSetShape extends K8sObject {
  spec: {
    selector: { matchLabels: Record<string, string> };
    updateStrategy?: { type?: string; rollingUpdate?: { maxUnavailable?: number | string; maxSurge?: number | string } };
    template: {
      metadata: { labels: Record<string, string>; annotations?: Record<string, string> };
      spec: {
        hostNetwork?: boolean;
        dnsPolicy?: string;
        priorityClassName?: string;
        serviceAccountName?: string;
        tolerations?: Array<{ key?: string; operator?: string; effect?: string }>;
        containers: Container[];
        volumes?: Array<{
          name: string;
          hostPath?: { path: string; type?: string };
          configMap?: { name: string; items?: Array<{ key: string; path: string }> };
        }>;
      };
    };
  };
}

export interface ServiceShape extends K8sObject {
  spec: {
    clusterIP?: string;
    selector?: Record<string, string>;
    ports: Array<{ name?: string; port: number; targetPort?: number | string; protocol?: string }>;
  };
}

/** Value of a `-flag value` pair in an argument list (undefined when absent). */
export function flagValue(args: readonly string[], flag: string): string | undefined {
  const i = args.indexOf(flag);
  return i >= 0 ? args[i + 1] : undefined;
}

/** Kubernetes quantity (binary or decimal suffix, integer) to bytes. */
export function quantityBytes(q: string): number {
  const m = /^(\d+)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(q);
  if (m === null) throw new Error(`unsupported quantity ${q}`);
  const factor: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, k: 1e3, M: 1e6, G: 1e9, T: 1e12 };
  return Number(m[1]) * (m[2] === undefined ? 1 : factor[m[2]]!);
}
