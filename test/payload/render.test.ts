// Renders scripts-templates/ for both sides and every arch with the fixture context, then checks the
// output: shellcheck on every script (a missing shellcheck fails the test), --help on every script,
// YAML that parses, and the metrics-server manifest's offline/KubeEdge-specific settings.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { parseAllDocuments } from 'yaml';
import { renderFiles } from './helpers.js';
import { ARCH_LIST, SIDES, makeContext } from '../fixtures/payload/context.js';
import type { TemplateFile } from '../../src/render/render.js';

const EXPECTED: Record<'cloud' | 'edge', string[]> = {
  cloud: [
    'install.sh',
    'uninstall.sh',
    'verify.sh',
    'manifests/metrics-server.yaml',
    'manifests/iptables-metrics-setup.sh',
    'scripts/gen-stream-cert.sh',
    'scripts/refresh-stream-cert.sh',
    'scripts/deploy-edgemesh.sh',
    'scripts/check-logs-metrics.sh',
    'manifests/edgemesh/00-istio-crds.yaml',
    'manifests/edgemesh/01-rbac.yaml',
    'manifests/edgemesh/05-daemonset.yaml',
  ],
  edge: ['install.sh', 'uninstall.sh', 'verify.sh', 'scripts/configure-edgecore.sh'],
};
function writeTree(files: TemplateFile[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'kp-render-'));
  for (const f of files) {
    const p = join(dir, f.path);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, f.content);
    chmodSync(p, f.mode);
  }
  return dir;
}

test('shellcheck is installed (required: the payload tests fail without it)', () => {
  const r = spawnSync('shellcheck', ['--version'], { encoding: 'utf8' });
  assert.equal(r.error, undefined, `shellcheck not runnable: ${r.error?.message}`);
  assert.equal(r.status, 0);
});

for (const side of SIDES) {
  for (const arch of ARCH_LIST) {
    describe(`${side}/${arch}`, () => {
      test('renders the expected files, scripts executable, no leftover placeholders', async () => {
        const { files } = await renderFiles(side, arch);
        const paths = files.map((f) => f.path);
        for (const p of EXPECTED[side]) assert.ok(paths.includes(p), `${p} missing; rendered: ${paths.join(', ')}`);
        for (const f of files) {
          assert.ok(EXPECTED[side].includes(f.path), `unexpected rendered file ${f.path}`);
          assert.equal(f.mode, f.path.endsWith('.sh') ? 0o755 : 0o644, f.path);
          assert.ok(!f.content.includes('{{'), `${f.path} still holds Handlebars syntax`);
          assert.ok(!/__[A-Z_]+__|PLACEHOLDER/.test(f.content), `${f.path} holds a placeholder`);
        }
      });

      test('every script: bash shebang, strict mode, --help, shellcheck clean', async () => {
        const { files } = await renderFiles(side, arch);
        const scripts = files.filter((f) => f.path.endsWith('.sh'));
        assert.ok(scripts.length > 0);
        const dir = writeTree(files);
        try {
          for (const s of scripts) {
            assert.match(s.content, /^#!\/usr\/bin\/env bash\n/, `${s.path}: shebang`);
            assert.match(s.content, /\nset -Eeuo pipefail\n/, `${s.path}: strict mode`);
            const help = spawnSync('bash', [join(dir, s.path), '--help'], { encoding: 'utf8', env: { ...process.env, KP_SYSROOT: dir } });
            assert.equal(help.status, 0, `${s.path} --help failed: ${help.stderr}`);
            assert.match(help.stdout, /^Usage: /m, `${s.path} --help prints no usage`);
            const bad = spawnSync('bash', [join(dir, s.path), '--no-such-flag'], { encoding: 'utf8', env: { ...process.env, KP_SYSROOT: dir } });
            assert.equal(bad.status, 2, `${s.path} with an unknown flag should exit 2, got ${bad.status}: ${bad.stderr}`);
            assert.match(bad.stderr, /unknown argument: --no-such-flag/, s.path);
          }
          const sc = spawnSync('shellcheck', ['--shell=bash', '--severity=style', ...scripts.map((s) => join(dir, s.path))], { encoding: 'utf8' });
          assert.equal(sc.error, undefined, `shellcheck could not run: ${sc.error?.message}`);
          assert.equal(sc.status, 0, `shellcheck findings for ${side}/${arch}:\n${sc.stdout}${sc.stderr}`);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      });

      test('every YAML file parses', async () => {
        const { files } = await renderFiles(side, arch);
        for (const f of files.filter((x) => /\.ya?ml$/.test(x.path))) {
          const docs = parseAllDocuments(f.content);
          assert.ok(Array.isArray(docs), `${f.path}: not a document list`);
          for (const d of docs) {
            assert.deepEqual(d.errors, [], `${f.path}: ${d.errors.map((e) => e.message).join('; ')}`);
            assert.deepEqual(d.warnings, [], `${f.path}: ${d.warnings.map((e) => e.message).join('; ')}`);
            const obj = d.toJS() as { apiVersion?: string; kind?: string; metadata?: { name?: string } } | null;
            assert.ok(obj && obj.apiVersion && obj.kind && obj.metadata?.name, `${f.path}: a document without apiVersion/kind/metadata.name`);
          }
        }
      });
    });
  }
}

type K8sObj = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string }; [k: string]: unknown };

describe('cloud manifests/metrics-server.yaml', () => {
  for (const arch of ARCH_LIST) {
    test(`${arch}: offline image, KubeEdge kubelet flags, hostNetwork on the control plane, RBAC`, async () => {
      const { files } = await renderFiles('cloud', arch);
      const ctx = await makeContext('cloud', arch);
      const f = files.find((x) => x.path === 'manifests/metrics-server.yaml');
      assert.ok(f);
      const objs = parseAllDocuments(f.content).map((d) => d.toJS() as K8sObj);
      const byKind = (kind: string, name: string) => objs.find((o) => o.kind === kind && o.metadata.name === name);
      for (const [kind, name] of [
        ['ServiceAccount', 'metrics-server'],
        ['ClusterRole', 'system:aggregated-metrics-reader'],
        ['ClusterRole', 'system:metrics-server'],
        ['RoleBinding', 'metrics-server-auth-reader'],
        ['ClusterRoleBinding', 'metrics-server:system:auth-delegator'],
        ['ClusterRoleBinding', 'system:metrics-server'],
        ['Service', 'metrics-server'],
        ['Deployment', 'metrics-server'],
        ['APIService', 'v1beta1.metrics.k8s.io'],
      ]) {
        assert.ok(byKind(kind!, name!), `${kind} ${name} missing`);
      }
      const rb = byKind('RoleBinding', 'metrics-server-auth-reader') as unknown as { roleRef: { name: string }; metadata: { namespace: string } };
      assert.equal(rb.roleRef.name, 'extension-apiserver-authentication-reader');
      assert.equal(rb.metadata.namespace, 'kube-system');
      const role = byKind('ClusterRole', 'system:metrics-server') as unknown as { rules: Array<{ resources: string[]; verbs: string[] }> };
      const rules = role.rules.flatMap((r) => r.resources.map((res) => `${res}:${r.verbs.join(',')}`));
      assert.ok(rules.includes('nodes/metrics:get'), rules.join(' '));
      for (const res of ['pods', 'nodes']) assert.ok(rules.includes(`${res}:get,list,watch`), rules.join(' '));

      const dep = byKind('Deployment', 'metrics-server') as unknown as {
        spec: { template: { spec: Record<string, any> } };
      };
      const pod = dep.spec.template.spec;
      assert.equal(pod.hostNetwork, true);
      const c = pod.containers[0];
      assert.equal(c.image, ctx.images.metricsServer);
      assert.equal(c.imagePullPolicy, 'Never');
      for (const a of [
        '--kubelet-insecure-tls',
        '--kubelet-use-node-status-port',
        '--kubelet-preferred-address-types=InternalIP,Hostname,InternalDNS,ExternalDNS,ExternalIP',
        '--secure-port=4443',
      ]) {
        assert.ok(c.args.includes(a), `arg ${a} missing: ${c.args.join(' ')}`);
      }
      assert.equal(c.ports[0].containerPort, 4443);
      assert.ok(c.readinessProbe && c.livenessProbe, 'probes');
      assert.equal(c.securityContext.runAsNonRoot, true);
      const terms = pod.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms;
      assert.ok(JSON.stringify(terms).includes('node-role.kubernetes.io/control-plane'));
      assert.ok(pod.tolerations.some((t: { key: string }) => t.key === 'node-role.kubernetes.io/control-plane'));
      const api = byKind('APIService', 'v1beta1.metrics.k8s.io') as unknown as { spec: { service: { name: string; namespace: string } } };
      assert.deepEqual(api.spec.service, { name: 'metrics-server', namespace: 'kube-system' });
    });
  }
});

test('cloud install.sh: K3s server flags, keadm init flags and the airgap install', async () => {
  const { files, ctx } = await renderFiles('cloud', 'amd64');
  const s = files.find((f) => f.path === 'install.sh')!.content;
  for (const needle of [
    '--egress-selector-mode=disabled',
    '--disable=metrics-server',
    'INSTALL_K3S_SKIP_DOWNLOAD=true',
    '/var/lib/rancher/k3s/agent/images',
    '--set iptablesManager.mode=external',
    '--set cloudCore.modules.cloudStream.enable=true',
    '--set cloudCore.modules.dynamicController.enable=true',
    '/etc/rancher/k3s/k3s.yaml',
    '/var/log/kubeprepare-install.log',
  ]) {
    assert.ok(s.includes(needle), `install.sh lacks ${needle}`);
  }
  assert.ok(s.includes(`readonly KUBEEDGE_VERSION_BARE=${ctx.versions.kubeedgeBare}`));
});

test('edge install.sh: keadm join flags, image import, runtime only where bundled', async () => {
  for (const arch of ARCH_LIST) {
    const { files, ctx } = await renderFiles('edge', arch);
    const s = files.find((f) => f.path === 'install.sh')!.content;
    for (const needle of ['--cloudcore-ipport', '--edgenode-name', '--remote-runtime-endpoint', '--cgroupdriver', '--kubeedge-version', 'images import --platform']) {
      assert.ok(s.includes(needle), `${arch}: install.sh lacks ${needle}`);
    }
    assert.ok(s.includes(`readonly PLATFORM=${ctx.platform}`), arch);
    assert.equal(/runtime\/containerd-[^\s"']+\.tar\.gz/.test(s), ctx.runtimeBundled, `${arch}: containerd tarball reference`);
    if (ctx.runtimeBundled) assert.ok(s.includes(ctx.files.containerdTarball!), `${arch}: ${ctx.files.containerdTarball} named`);
    assert.equal(/readonly RUNTIME_BUNDLED=1/.test(s), ctx.runtimeBundled, arch);
  }
});

test('cloud manifests/edgemesh: CRDs with open schemas, RBAC, DaemonSet with the bundled image', async () => {
  for (const arch of ARCH_LIST) {
    const { files, ctx } = await renderFiles('cloud', arch);
    const objs = files
      .filter((f) => f.path.startsWith('manifests/edgemesh/'))
      .flatMap((f) => parseAllDocuments(f.content).map((d) => d.toJS() as K8sObj));
    const crds = objs.filter((o) => o.kind === 'CustomResourceDefinition');
    assert.deepEqual(
      crds.map((c) => c.metadata.name).sort(),
      ['destinationrules.networking.istio.io', 'gateways.networking.istio.io', 'virtualservices.networking.istio.io'],
    );
    for (const c of crds) {
      const versions = (c as unknown as { spec: { group: string; versions: Array<{ storage: boolean; schema: { openAPIV3Schema: Record<string, unknown> } }> } }).spec;
      assert.equal(versions.group, 'networking.istio.io');
      assert.equal(versions.versions.filter((v) => v.storage).length, 1, `${c.metadata.name}: one storage version`);
      for (const v of versions.versions) assert.equal(v.schema.openAPIV3Schema['x-kubernetes-preserve-unknown-fields'], true);
    }
    assert.ok(!objs.some((o) => o.kind === 'Namespace'), 'namespace kubeedge belongs to keadm, not to these manifests');
    for (const kind of ['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'DaemonSet']) {
      assert.ok(objs.some((o) => o.kind === kind && o.metadata.name === 'edgemesh-agent'), `${kind} edgemesh-agent`);
    }
    const ds = objs.find((o) => o.kind === 'DaemonSet') as unknown as { metadata: { namespace: string }; spec: { template: { spec: Record<string, any> } } };
    assert.equal(ds.metadata.namespace, 'kubeedge');
    const pod = ds.spec.template.spec;
    assert.equal(pod.containers[0].image, ctx.images.edgemeshAgent);
    assert.ok(['IfNotPresent', 'Never'].includes(pod.containers[0].imagePullPolicy));
    const cms = pod.volumes.filter((v: { configMap?: { name: string } }) => v.configMap).map((v: { configMap: { name: string } }) => v.configMap.name);
    assert.deepEqual(cms.sort(), ['edgemesh-agent-cfg', 'edgemesh-agent-psk']);
  }
});
