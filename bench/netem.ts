/**
 * `npm run bench -- --netem`: the registries behind a network that is not loopback, where request
 * count and parallelism matter. The bench re-runs itself in a new network namespace (unshare -n, the
 * "client"), makes a second one for the registries (a `sleep` child of `unshare -n`, the "server"), and
 * joins them with a veth pair on 10.231.0.0/30 (private to the two namespaces: the host's interfaces
 * and routing tables are never touched). Each veth end gets `tc qdisc … netem delay 20ms rate R`
 * (40 ms round trip). Where the kernel has no netem (CONFIG_NET_SCH_NETEM), the bench says so, limits
 * the rate with tbf on each end instead and emulates the latency with a userspace TCP relay in the
 * client namespace (each chunk forwarded 20 ms later each way, connections opened one round trip late).
 * The engine always reaches the registries through a loopback relay there (the engine is offline: it
 * talks to loopback only); without netem that relay also adds the delay.
 * Measured: the floor (4 parallel curls, each blob once) and cold builds at concurrency 2, 4, 8, 16.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { engineChild, median, networkFloor, printChecks, roundsArg, type Check } from './floor.js';
import { ARCH, fixturesPy, must, prepareFixtures, run, scaleArg, settle, type CatalogEntry } from './lib.js';

const DELAY_MS = 20;
const RATE = process.env.KP_BENCH_RATE ?? '200mbit';
const LEVELS = [2, 4, 8, 16];

export async function netemProfile(): Promise<void> {
  if (process.env.KP_BENCH_NETNS !== 'client') {
    // Re-run this bench inside a fresh network namespace; its output is this process's output.
    const child = spawn('unshare', ['-n', '--', process.execPath, ...process.execArgv, ...process.argv.slice(1)], { stdio: 'inherit', env: { ...process.env, KP_BENCH_NETNS: 'client' } });
    process.exitCode = await new Promise<number>((res) => child.on('close', (c) => res(c ?? 1)));
    return;
  }
  const scale = scaleArg();
  const rounds = roundsArg();
  const { fixtures, cloud } = await prepareFixtures(scale);
  const work = await mkdtemp(join(tmpdir(), 'kp-netem-'));
  const server = spawn('unshare', ['-n', '--', 'sleep', '100000'], { stdio: 'ignore' });
  const procs: ChildProcess[] = [];
  const relays: net.Server[] = [];
  try {
    await new Promise((r) => setTimeout(r, 200));
    const S = String(server.pid);
    const inS = (cmd: string) => must('nsenter', ['-t', S, '-n', 'sh', '-c', cmd], `in the server namespace: ${cmd}`);
    await must('sh', ['-c', `ip link set lo up && ip link add kpc0 type veth peer name kps0 && ip link set kps0 netns ${S} && ip addr add 10.231.0.1/30 dev kpc0 && ip link set kpc0 up`], 'client veth');
    await inS('ip link set lo up && ip addr add 10.231.0.2/30 dev kps0 && ip link set kps0 up');
    const ports = { 'docker.io': 5000, 'registry.k8s.io': 5001 };
    for (const port of Object.values(ports)) procs.push(await serverRegistry(S, work, port));
    await inS(`python3 ${fixturesPy} push ${fixtures} ${ports['docker.io']} ${ports['registry.k8s.io']} >/dev/null`);

    const netem = await run('tc', ['qdisc', 'add', 'dev', 'kpc0', 'root', 'netem', 'delay', `${DELAY_MS}ms`, 'rate', RATE]);
    let relayDelay = 0;
    if (netem.code === 0) {
      await inS(`tc qdisc add dev kps0 root netem delay ${DELAY_MS}ms rate ${RATE}`);
      console.log(`netem: delay ${DELAY_MS} ms each way (${2 * DELAY_MS} ms round trip), rate ${RATE} each way, on the veth pair`);
    } else {
      relayDelay = DELAY_MS;
      console.log(`NETEM UNAVAILABLE: 'tc qdisc add … netem' failed (${netem.stderr.trim()}); this kernel has no sch_netem (CONFIG_NET_SCH_NETEM).`);
      console.log(`  instead: rate ${RATE} by tbf on each veth end, and ${DELAY_MS} ms each way (${2 * DELAY_MS} ms round trip) added by a userspace TCP relay in the client namespace.`);
      const tbf = `tc qdisc add dev %s root tbf rate ${RATE} burst 256kb latency 200ms`;
      await must('sh', ['-c', tbf.replace('%s', 'kpc0')], 'tbf (client)');
      await inS(tbf.replace('%s', 'kps0'));
    }
    const hub = await relay('10.231.0.2', ports['docker.io'], relayDelay, relays);
    const k8s = await relay('10.231.0.2', ports['registry.k8s.io'], relayDelay, relays);
    const local = (c: CatalogEntry) => `127.0.0.1:${c.registry === 'registry.k8s.io' ? k8s : hub}/${c.repo}:${c.tag}`;
    const registriesFile = join(work, 'registries.yaml');
    await writeFile(registriesFile, `mirrors:\n  docker.io:\n    endpoint: ["http://127.0.0.1:${hub}"]\n  registry.k8s.io:\n    endpoint: ["http://127.0.0.1:${k8s}"]\n`);
    await sweep({ cloud, local, registriesFile, work, rounds, scale });
  } finally {
    for (const s of relays) s.close();
    for (const p of procs) p.kill('SIGTERM');
    server.kill('SIGTERM');
    await rm(work, { recursive: true, force: true });
  }
}

async function sweep(o: { cloud: CatalogEntry[]; local(c: CatalogEntry): string; registriesFile: string; work: string; rounds: number; scale: number }): Promise<void> {
  const images = o.cloud.map((c) => `${c.registry}/${c.repo}:${c.tag}`);
  const floors: number[] = [];
  const cold = new Map<number, number[]>(LEVELS.map((n) => [n, []]));
  for (let i = 0; i < o.rounds; i++) {
    await settle();
    floors.push((await networkFloor([{ refs: o.cloud.map(o.local), arch: ARCH }], join(o.work, 'floor'))).seconds);
    const line = [`round ${i + 1}/${o.rounds}: floor ${floors[i]!.toFixed(2)} s`];
    for (const n of LEVELS) {
      const cacheDir = join(o.work, `cache-${n}`);
      await rm(cacheDir, { recursive: true, force: true });
      await settle();
      const r = await engineChild({ images, arch: ARCH, outFile: join(o.work, 'cold.tar'), cacheDir, registriesFile: o.registriesFile, concurrency: n });
      cold.get(n)!.push(r.seconds);
      line.push(`c${n} ${r.seconds.toFixed(2)} s`);
    }
    console.log(line.join(' · '));
  }
  const floor = median(floors);
  console.log(`\ncloud ${ARCH} set over the emulated network, scale ${o.scale}, medians of ${o.rounds} round(s): floor ${floor.toFixed(2)} s`);
  const med = LEVELS.map((n) => [n, median(cold.get(n)!)] as const);
  for (const [n, s] of med) console.log(`  cold, --concurrency ${String(n).padEnd(3)} ${s.toFixed(2).padStart(7)} s  ${(s / floor).toFixed(2)}× floor`);
  const best = med.reduce((a, b) => (b[1] < a[1] ? b : a));
  console.log(`  fastest: --concurrency ${best[0]}`);
  const c4 = med.find(([n]) => n === 4)![1];
  const checks: Check[] = [
    ['cold ≤ 1.5× floor (default concurrency 4)', c4 <= 1.5 * floor, `${(c4 / floor).toFixed(2)}×`],
    ['default 4 within 10% of the fastest level', c4 <= best[1] * 1.1, `${c4.toFixed(2)} s vs ${best[1].toFixed(2)} s (--concurrency ${best[0]})`],
  ];
  process.exitCode = printChecks(checks) ? 1 : 0;
}

/** docker-registry on 0.0.0.0:`port` inside the server namespace (pid `ns`). */
async function serverRegistry(ns: string, work: string, port: number): Promise<ChildProcess> {
  const dir = join(work, `registry-${port}`);
  await mkdir(dir, { recursive: true });
  const cfg = join(dir, 'config.yml');
  await writeFile(cfg, `version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${dir}/storage\nhttp:\n  addr: 0.0.0.0:${port}\n  secret: kubeprepare-bench\n`);
  const p = spawn('nsenter', ['-t', ns, '-n', '/usr/bin/docker-registry', 'serve', cfg], { stdio: 'ignore' });
  for (let i = 0; i < 100; i++) {
    const r = await run('nsenter', ['-t', ns, '-n', 'curl', '-sf', '-o', '/dev/null', `http://127.0.0.1:${port}/v2/`]);
    if (r.code === 0) return p;
    await new Promise((res) => setTimeout(res, 100));
  }
  p.kill('SIGTERM');
  throw new Error(`docker-registry on port ${port} in the server namespace did not start`);
}

/**
 * A TCP relay on loopback to host:port. With `delayMs`: each chunk is forwarded `delayMs` later in
 * each direction (order kept: same-duration timers fire in order) and the upstream connection is
 * opened one round trip late, as a handshake over that link would be.
 */
async function relay(host: string, port: number, delayMs: number, keep: net.Server[]): Promise<number> {
  const later = (fn: () => void) => (delayMs > 0 ? setTimeout(fn, delayMs) : fn());
  const server = net.createServer((down) => {
    down.pause();
    const up = net.connect(port, host);
    const kill = () => {
      down.destroy();
      up.destroy();
    };
    up.on('error', kill);
    down.on('error', kill);
    up.on('connect', () => setTimeout(() => down.resume(), 2 * delayMs));
    down.on('data', (c) => later(() => up.write(c)));
    up.on('data', (c) => later(() => down.write(c)));
    down.on('end', () => later(() => up.end()));
    up.on('end', () => later(() => down.end()));
  });
  keep.push(server);
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  return (server.address() as net.AddressInfo).port;
}
