/**
 * The Kubernetes manifests (infra/k8s/*.yaml): each parses, each object validates against the API's schema
 * for its kind (built-in kinds: kubernetes-models' validators, compiled from the Kubernetes OpenAPI spec;
 * InferencePool and HTTPRoute: their CRDs' openAPIV3Schema, vendored in tests/infra/schemas/, with unknown
 * fields refused as `kubectl apply`'s strict field validation does; CEL rules are not evaluated), and the
 * references between them and into the code hold: selectors match pod labels, probes ask paths the node and
 * edge apps answer, every setting is one the code reads and parses, secrets and claims exist, ports agree.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { Ajv, type ValidateFunction } from "ajv";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { StatefulSet } from "kubernetes-models/apps/v1/StatefulSet";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { PersistentVolumeClaim } from "kubernetes-models/v1/PersistentVolumeClaim";
import { Secret } from "kubernetes-models/v1/Secret";
import { Service } from "kubernetes-models/v1/Service";
import { parseAllDocuments } from "yaml";
import { describe, expect, it } from "vitest";
import { healthRoutes } from "../../edge/routes/health.ts";
import { NODE_HEALTH } from "../../clients/wire/routes.ts";
import { CONFIG_SOURCES, loadConfig, type Config } from "../../hosts/node/config.ts";
import { createNodeApp } from "../../hosts/node/plane-server/node-app.ts";

const root = resolve(import.meta.dirname, "../..");
const dir = join(root, "infra/k8s");
const files = readdirSync(dir).filter((f) => f.endsWith(".yaml")).sort();

type Obj = { apiVersion: string; kind: string; metadata: { name: string; labels?: Record<string, string> }; spec?: any; data?: Record<string, string>; stringData?: Record<string, string> };
const docs = files.flatMap((file) => parseAllDocuments(readFileSync(join(dir, file), "utf8")).map((doc) => ({ file, doc })));
const objects = docs.map(({ file, doc }) => ({ file, obj: doc.toJS() as Obj })).filter(({ file }) => file !== "kustomization.yaml");
const byKind = (kind: string) => objects.map((o) => o.obj).filter((o) => o.kind === kind);
const named = (kind: string, name: string) => byKind(kind).find((o) => o.metadata.name === name);

/** A CRD's openAPIV3Schema as ajv checks it: objects with declared properties take no others (strict field validation). */
function crdValidator(file: string): ValidateFunction {
  const { openAPIV3Schema } = JSON.parse(readFileSync(join(import.meta.dirname, "schemas", file), "utf8")) as { openAPIV3Schema: object };
  const strict = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(strict);
    if (!node || typeof node !== "object") return node;
    const out = Object.fromEntries(Object.entries(node).map(([k, v]) => [k, k === "properties" ? Object.fromEntries(Object.entries(v as object).map(([p, s]) => [p, strict(s)])) : strict(v)]));
    if ("properties" in out && !("additionalProperties" in out) && !("x-kubernetes-preserve-unknown-fields" in out)) out.additionalProperties = false;
    return out;
  };
  const ajv = new Ajv({ strict: false, allErrors: true });
  ajv.addFormat("int32", { type: "number", validate: (n: number) => Number.isInteger(n) && Math.abs(n) <= 2 ** 31 });
  ajv.addFormat("int64", { type: "number", validate: (n: number) => Number.isInteger(n) });
  ajv.addFormat("date-time", (s: string) => !Number.isNaN(Date.parse(s)));
  return ajv.compile(strict(openAPIV3Schema) as object);
}
const CRDS: Record<string, ValidateFunction> = {
  "inference.networking.k8s.io/v1 InferencePool": crdValidator("inferencepool-v1.json"),
  "gateway.networking.k8s.io/v1 HTTPRoute": crdValidator("httproute-v1.json"),
};
const MODELS: Record<string, new (o: any) => { validate(): void }> = {
  "v1 ConfigMap": ConfigMap,
  "v1 Secret": Secret,
  "v1 Service": Service,
  "v1 PersistentVolumeClaim": PersistentVolumeClaim,
  "apps/v1 Deployment": Deployment,
  "apps/v1 StatefulSet": StatefulSet,
};

/** Throws when the object does not validate against its kind's schema. */
function validate(obj: Obj): void {
  const key = `${obj.apiVersion} ${obj.kind}`;
  const crd = CRDS[key];
  if (crd) {
    const valid: boolean = crd(obj as unknown);
    if (!valid) throw new Error(`${key} ${obj.metadata?.name}: ${JSON.stringify(crd.errors)}`);
    return;
  }
  const Model = MODELS[key];
  if (!Model) throw new Error(`no schema for ${key}`);
  new Model(obj).validate();
}

const workloads = [...byKind("Deployment"), ...byKind("StatefulSet")];
const SECRET_STAND_IN = "s".repeat(24);

/** What the container's process is: its command, and the config it parses from its environment and flags. */
function containerConfig(container: any): { command: string; config: Config } {
  const env: Record<string, string> = {};
  for (const from of container.envFrom ?? []) Object.assign(env, named("ConfigMap", from.configMapRef.name)!.data);
  for (const e of container.env ?? []) env[e.name] = e.value ?? SECRET_STAND_IN;
  const [verb, ...rest] = container.args as string[];
  if (verb === "start") return { command: "start", config: loadConfig(env, rest) };
  expect(verb).toBe("serve");
  expect(["inference", "retrieval", "trainer"]).toContain(rest[0]);
  return { command: `serve ${rest[0]}`, config: loadConfig(env, rest.slice(1)) };
}
const containers = workloads.flatMap((w) => (w.spec.template.spec.containers as any[]).map((c) => ({ workload: w, pod: w.spec.template, container: c, ...containerConfig(c) })));
const only = (command: string) => containers.filter((c) => c.command === command);

describe("infra/k8s manifests", () => {
  it("parse, and kustomization.yaml lists every other file", () => {
    for (const { file, doc } of docs) expect(doc.errors, file).toEqual([]);
    const kustomization = docs.find((d) => d.file === "kustomization.yaml")!.doc.toJS() as { resources: string[] };
    expect([...kustomization.resources].sort()).toEqual(files.filter((f) => f !== "kustomization.yaml"));
    expect(new Set(objects.map((o) => o.obj.kind))).toEqual(new Set(["ConfigMap", "Secret", "PersistentVolumeClaim", "Deployment", "StatefulSet", "Service", "InferencePool", "HTTPRoute"]));
  });

  it("validate against the Kubernetes API's schema for their kind", () => {
    for (const { file, obj } of objects) expect(() => validate(obj), `${file}: ${obj.kind} ${obj.metadata.name}`).not.toThrow();
    // The validators do reject: a Deployment without its selector, a pool without ports, a misspelt route field.
    const edge = structuredClone(named("Deployment", "switchyard-edge")!);
    delete edge.spec.selector;
    expect(() => validate(edge)).toThrow(/selector/);
    const pool = structuredClone(byKind("InferencePool")[0]);
    pool.spec.targetPorts = [];
    expect(() => validate(pool)).toThrow();
    const route = structuredClone(byKind("HTTPRoute")[0]);
    route.spec.rules[0].backendRef = route.spec.rules[0].backendRefs;
    expect(() => validate(route)).toThrow(/additionalProperties/);
  });

  it("select their pods: workload and Service selectors, the pool's selector and ports, the route's backend", () => {
    const matches = (selector: Record<string, string>, labels: Record<string, string>) => Object.entries(selector).every(([k, v]) => labels[k] === v);
    for (const w of workloads) expect(matches(w.spec.selector.matchLabels, w.spec.template.metadata.labels), w.metadata.name).toBe(true);
    for (const service of byKind("Service")) {
      const selected = workloads.filter((w) => matches(service.spec.selector, w.spec.template.metadata.labels));
      expect(selected.map((w) => w.metadata.name), service.metadata.name).toHaveLength(1);
      const ports = (selected[0].spec.template.spec.containers as any[]).flatMap((c) => c.ports ?? []);
      for (const port of service.spec.ports) expect(ports.map((p: any) => (typeof port.targetPort === "string" ? p.name : p.containerPort))).toContain(port.targetPort);
    }
    for (const set of byKind("StatefulSet")) expect(named("Service", set.spec.serviceName)?.spec.clusterIP).toBe("None");

    const [inference] = only("serve inference");
    const pool = byKind("InferencePool")[0];
    expect(matches(pool.spec.selector.matchLabels, inference.pod.metadata.labels)).toBe(true);
    expect(workloads.filter((w) => matches(pool.spec.selector.matchLabels, w.spec.template.metadata.labels))).toHaveLength(1);
    expect(pool.spec.targetPorts.map((p: any) => p.number)).toEqual([inference.config.port]);
    const backends = byKind("HTTPRoute")[0].spec.rules.flatMap((r: any) => r.backendRefs);
    expect(backends).toEqual([expect.objectContaining({ group: "inference.networking.k8s.io", kind: "InferencePool", name: pool.metadata.name })]);
  });

  it("set only settings the code reads, with values it accepts, and refer to secrets, config maps and claims that exist", () => {
    const known = new Set(Object.values(CONFIG_SOURCES).map((s) => s.env));
    for (const map of byKind("ConfigMap")) for (const key of Object.keys(map.data ?? {})) expect(known, key).toContain(key);
    for (const { container } of containers) {
      for (const e of container.env ?? []) {
        expect(known, e.name).toContain(e.name);
        const ref = e.valueFrom?.secretKeyRef;
        if (ref) expect(Object.keys(named("Secret", ref.name)?.stringData ?? {}), `${ref.name}/${ref.key}`).toContain(ref.key);
      }
    }
    for (const w of workloads) {
      const pod = w.spec.template.spec;
      const volumes = new Set([...(pod.volumes ?? []).map((v: any) => v.name), ...(w.spec.volumeClaimTemplates ?? []).map((t: any) => t.metadata.name)]);
      for (const v of pod.volumes ?? []) if (v.persistentVolumeClaim) expect(named("PersistentVolumeClaim", v.persistentVolumeClaim.claimName), v.persistentVolumeClaim.claimName).toBeDefined();
      for (const c of pod.containers) for (const m of c.volumeMounts ?? []) expect(volumes, `${w.metadata.name}: ${m.name}`).toContain(m.name);
    }
    // The node secret the edge sends is the one the nodes accept.
    const secretRef = (c: any) => c.env.find((e: any) => e.name === CONFIG_SOURCES.nodeSecret.env).valueFrom.secretKeyRef;
    const refs = [...only("start"), ...only("serve inference"), ...only("serve retrieval")].map((c) => secretRef(c.container));
    expect(new Set(refs.map((r) => `${r.name}/${r.key}`)).size).toBe(1);
  });

  it("listen where their ports and Services say, keep state on their volumes, and the edge's node URLs name those Services", () => {
    for (const { workload, container, config, command } of containers) {
      const mounts = (container.volumeMounts as any[]).map((m) => m.mountPath);
      expect(mounts, `${workload.metadata.name} data dir`).toContain(config.dataDir);
      if (command !== "serve retrieval") for (const p of config.modelPath.split(":")) expect(mounts, `${workload.metadata.name} model path`).toContain(p);
      if (command === "serve trainer") continue;
      expect(config.host).toBe("0.0.0.0");
      expect((container.ports as any[]).map((p) => p.containerPort)).toEqual([config.port]);
    }
    const [edge] = only("start");
    const target = (url: string) => {
      const { hostname, port } = new URL(url);
      const [first, second] = hostname.split(".");
      // <service> or <statefulset>-<n>.<headless service>
      const service = named("Service", second ?? first)!;
      expect(service, url).toBeDefined();
      if (second) expect(byKind("StatefulSet").find((s) => s.spec.serviceName === second && first.startsWith(`${s.metadata.name}-`) && Number(first.slice(s.metadata.name.length + 1)) < s.spec.replicas), url).toBeDefined();
      expect(service.spec.ports.map((p: any) => String(p.port))).toContain(port || "80");
      return service.spec.selector["app.kubernetes.io/component"];
    };
    expect(edge.config.inferenceUrl!.map(target)).toEqual(["inference"]);
    expect(edge.config.retrievalUrl!.map(target)).toEqual(["retrieval"]); // one partition per StatefulSet replica
  });

  it("probe paths the node and edge apps answer: readiness on the plane loaded, liveness on the process", async () => {
    let loaded = false;
    const node = createNodeApp({ secrets: [SECRET_STAND_IN], ready: () => loaded, metrics: { observe: () => {} }, metricsText: async () => "" });
    for (const { container, workload } of [...only("serve inference"), ...only("serve retrieval")]) {
      expect(container.readinessProbe.httpGet.path, workload.metadata.name).toBe(NODE_HEALTH.ready);
      expect(container.livenessProbe.httpGet.path).toBe(NODE_HEALTH.live);
      for (const probe of [container.readinessProbe, container.livenessProbe]) expect(container.ports.map((p: any) => p.name)).toContain(probe.httpGet.port);
    }
    loaded = false;
    expect((await node.request(NODE_HEALTH.ready)).status).toBe(503);
    expect((await node.request(NODE_HEALTH.live)).status).toBe(200);
    loaded = true;
    expect((await node.request(NODE_HEALTH.ready)).status).toBe(200);

    const edgeApp = healthRoutes({ checkDatabase: async () => {} });
    for (const { container } of only("start")) {
      for (const probe of [container.readinessProbe, container.livenessProbe, container.startupProbe]) {
        expect(container.ports.map((p: any) => p.name)).toContain(probe.httpGet.port);
        expect((await edgeApp.request(probe.httpGet.path)).status, probe.httpGet.path).toBe(200);
      }
    }
  });

  it("drain before they stop: a preStop pause, then SIGTERM's graceful close within the grace period", () => {
    for (const { workload, container, config, command } of containers) {
      const grace = workload.spec.template.spec.terminationGracePeriodSeconds;
      expect(grace, workload.metadata.name).toBeGreaterThan(config.shutdownTimeoutMs / 1000);
      if (command === "serve trainer") continue;
      const [sleep, seconds] = container.lifecycle.preStop.exec.command;
      expect(sleep).toBe("sleep");
      expect(grace, workload.metadata.name).toBeGreaterThan(Number(seconds) + config.shutdownTimeoutMs / 1000);
    }
  });

  it("give each inference pod a GPU for the CUDA execution provider, and run every pod as non-root", () => {
    const [inference] = only("serve inference");
    expect(inference.config.executionProvider).toBe("cuda");
    const { requests, limits } = inference.container.resources;
    expect(Number(limits["nvidia.com/gpu"])).toBeGreaterThanOrEqual(1);
    expect(requests["nvidia.com/gpu"]).toBe(limits["nvidia.com/gpu"]);
    for (const { command, container } of containers) if (command !== "serve inference") expect(container.resources.limits?.["nvidia.com/gpu"]).toBeUndefined();
    for (const { workload, container } of containers) {
      expect(workload.spec.template.spec.securityContext, workload.metadata.name).toEqual(expect.objectContaining({ runAsNonRoot: true, runAsUser: expect.any(Number) }));
      expect(workload.spec.template.spec.securityContext.runAsUser).toBeGreaterThan(0);
      expect(container.securityContext).toEqual(expect.objectContaining({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true }));
      expect((container.volumeMounts as any[]).map((m) => m.mountPath), "tsx writes its cache to /tmp").toContain("/tmp");
    }
  });
});
