import { Command, CommanderError, Option } from 'commander';
import { UserError, isUserError } from './errors.js';
import { parseArchList } from './platform.js';
import { COMPRESSIONS, DEFAULT_COMPRESSION, parseMirrorFlag, type Compression } from './plan/plan.js';
import { ENGINES, type EngineName } from './engines/index.js';
import type { Side } from './manifest/schema.js';
import { chooseRenderer } from './progress/ui.js';
import { DEFAULT_MANIFEST, TOOL_VERSION } from './version.js';
import { fmtBytes } from './util/format.js';
import { build } from './commands/build.js';
import { plan, planToJson, planToText } from './commands/plan.js';
import { render } from './commands/render.js';
import { images } from './commands/images.js';
import { verify, verifyToText } from './commands/verify.js';
import { inspect, inspectToText } from './commands/inspect.js';
import { parseArch } from './platform.js';

/**
 * The command line: parses options and calls one function per command. Output goes to stdout,
 * progress and errors to stderr. Exit codes: 0 success, 1 failure while working, 2 bad usage or input.
 */
export interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
  env: NodeJS.ProcessEnv;
  isTTY: boolean;
}

const defaultIo: Io = {
  out: (s) => process.stdout.write(s.endsWith('\n') ? s : `${s}\n`),
  err: (s) => process.stderr.write(s.endsWith('\n') ? s : `${s}\n`),
  env: process.env,
  isTTY: Boolean(process.stderr.isTTY),
};

const collect = (v: string, prev: string[] = []) => [...prev, v];

function commonOptions(cmd: Command): Command {
  return cmd
    .option('-m, --manifest <file>', 'versions manifest', DEFAULT_MANIFEST)
    .addOption(new Option('--only <side>', 'build one side only').choices(['cloud', 'edge']))
    .option('--binary-mirror <from=to>', 'rewrite binary URLs starting with FROM to start with TO (repeatable)', collect, []);
}

const archOption = () => new Option('-a, --arch <list>', 'architectures, comma-separated: amd64, arm64, arm (= arm/v7)').makeOptionMandatory();

export function makeProgram(io: Io = defaultIo): Command {
  const program = new Command('kubeprepare')
    .description('Builds offline install bundles for a K3s cloud node and KubeEdge edge nodes (EdgeMesh, metrics-server).')
    .version(TOOL_VERSION, '-V, --version')
    .option('-v, --verbose', 'show stack traces on errors')
    .option('-q, --quiet', 'no progress output')
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) })
    .exitOverride()
    .addHelpText(
      'after',
      `
Examples:
  $ kubeprepare build --arch arm64                 cloud + edge tarballs for arm64 into dist/
  $ kubeprepare plan --arch amd64,arm64 --json     what a build would fetch and write
  $ kubeprepare render --arch arm64 --out rendered templates only, for review
  $ kubeprepare verify dist/kubeprepare-edge-v1.22.0-linux-arm64.tar   check a bundle offline
  $ kubeprepare inspect dist/kubeprepare-cloud-v1.22.0-linux-arm64.tar what a bundle holds
  $ bundle build --arch arm64                      the same command under its other name

Exit codes: 0 success, 1 failure while working, 2 bad usage or bad input.`,
    );

  const renderer = () => chooseRenderer({ quiet: Boolean(program.opts().quiet), env: io.env, isTTY: io.isTTY });

  commonOptions(
    program
      .command('build')
      .description('fetch images and binaries for exactly the given platforms and write cloud and edge tarballs plus SHA256SUMS')
      .addOption(archOption()),
  )
    .option('-o, --out <dir>', 'output directory', 'dist')
    .option('--cache-dir <dir>', 'blob and download cache (default $XDG_CACHE_HOME/kubeprepare or ~/.cache/kubeprepare)')
    .addOption(new Option('--engine <engine>', 'how images are fetched (an image\'s own engine: in the manifest wins)').choices([...ENGINES]).default('registry'))
    .addOption(new Option('--compression <kind>', 'tarball compression (none: plain tar, see README)').choices([...COMPRESSIONS]).default(DEFAULT_COMPRESSION))
    .option('--registries <file>', 'registries.yaml with mirrors and credentials (K3s/containerd format)')
    .option('--docker-config <file>', 'Docker config.json with registry credentials (default ~/.docker/config.json)')
    .option('--keep-images', 'docker engine: keep the pulled images in the daemon (under kubeprepare.local/keep/) for fast rebuilds')
    .option('--templates <dir>', 'template directory (default: the bundled scripts-templates/)')
    .option('-n, --dry-run', 'show the plan and stop: nothing is downloaded or written')
    .option('--sbom', 'also write a CycloneDX 1.5 SBOM (sbom.cdx.json) inside each bundle')
    .option('--concurrency <n>', 'parallel blob downloads (default 4, chosen by npm run bench -- --netem)', (v) => { const n = Number(v); if (!Number.isInteger(n) || n < 1 || n > 64) throw new UserError(`--concurrency '${v}' is not a whole number from 1 to 64`); return n; })
    .addHelpText(
      'after',
      `
Examples:
  $ kubeprepare build --arch arm64
  $ kubeprepare build --arch amd64,arm64,arm --out release/ --compression gzip
  $ kubeprepare build --arch arm64 --only edge --registries mirrors.yaml
  $ kubeprepare build --arch arm64 --binary-mirror https://github.com/=http://mirror.local/github/
  $ kubeprepare build --arch arm64 --sbom          with sbom.cdx.json in each tarball`,
    )
    .action(async (o) => {
      const result = await build({
        manifest: o.manifest,
        platforms: parseArchList(o.arch),
        ...(o.only ? { only: o.only as Side } : {}),
        outDir: o.out,
        ...(o.cacheDir ? { cacheDir: o.cacheDir } : {}),
        engine: o.engine as EngineName,
        compression: o.compression as Compression,
        binaryMirrors: (o.binaryMirror as string[]).map(parseMirrorFlag),
        ...(o.registries ? { registriesFile: o.registries } : {}),
        ...(o.dockerConfig ? { dockerConfigPath: o.dockerConfig } : {}),
        ...(o.keepImages ? { keepImages: true } : {}),
        ...(o.templates ? { templatesDir: o.templates } : {}),
        dryRun: Boolean(o.dryRun),
        sbom: Boolean(o.sbom),
        ...(o.concurrency ? { concurrency: o.concurrency as number } : {}),
        renderer: renderer(),
      });
      if (result.dryRun) {
        io.out(planToText(result.plan));
        io.out('\n(dry run: nothing downloaded or written)');
        return;
      }
      for (const b of result.bundles) io.out(`${b.file}  ${fmtBytes(b.size)}  sha256:${b.sha256}`);
      if (result.checksumsFile) io.out(`checksums: ${result.checksumsFile}`);
    });

  commonOptions(program.command('plan').description('show what build would fetch and write, without downloading').addOption(archOption()))
    .option('-o, --out <dir>', 'output directory the plan names', 'dist')
    .addOption(new Option('--compression <kind>', 'tarball compression').choices([...COMPRESSIONS]).default(DEFAULT_COMPRESSION))
    .option('--json', 'machine-readable: one object per bundle (side, arch, images[].ref, binaries[].url)')
    .addHelpText(
      'after',
      `
Examples:
  $ kubeprepare plan --arch arm64
  $ kubeprepare plan --arch amd64,arm64 --json | jq '.bundles[].images[].ref'`,
    )
    .action(async (o) => {
      const p = await plan({
        manifest: o.manifest,
        platforms: parseArchList(o.arch),
        ...(o.only ? { only: o.only as Side } : {}),
        outDir: o.out,
        compression: o.compression as Compression,
        binaryMirrors: (o.binaryMirror as string[]).map(parseMirrorFlag),
      });
      io.out(o.json ? JSON.stringify(planToJson(p), null, 2) : planToText(p));
    });

  commonOptions(program.command('render').description('render the install templates only (no downloads) into a directory per bundle').addOption(archOption()))
    .option('-o, --out <dir>', 'output directory', 'rendered')
    .option('--templates <dir>', 'template directory (default: the bundled scripts-templates/)')
    .addHelpText(
      'after',
      `
Examples:
  $ kubeprepare render --arch arm64 --out /tmp/r && shellcheck /tmp/r/*/install.sh
  $ kubeprepare render --arch amd64 --only cloud --templates ./my-templates`,
    )
    .action(async (o) => {
      const r = await render({
        manifest: o.manifest,
        platforms: parseArchList(o.arch),
        ...(o.only ? { only: o.only as Side } : {}),
        outDir: o.out,
        ...(o.templates ? { templatesDir: o.templates } : {}),
      });
      for (const d of r.dirs) io.out(`${d.dir}  (${d.files.length} files)`);
    });

  program
    .command('images')
    .description('write only the images archive (OCI layout + docker manifest.json) for one platform')
    .requiredOption('-a, --arch <arch>', 'one architecture: amd64, arm64, arm (= arm/v7), arm/v6')
    .requiredOption('-o, --out <file>', 'archive to write, e.g. images-arm64.tar')
    .argument('[refs...]', 'image references (default: the manifest\'s images)')
    .option('-m, --manifest <file>', 'versions manifest', DEFAULT_MANIFEST)
    .addOption(new Option('--only <side>', 'only the images of one side').choices(['cloud', 'edge']))
    .option('--cache-dir <dir>', 'blob cache (default $XDG_CACHE_HOME/kubeprepare or ~/.cache/kubeprepare)')
    .addOption(new Option('--engine <engine>', 'how images are fetched').choices([...ENGINES]).default('registry'))
    .option('--registries <file>', 'registries.yaml with mirrors and credentials (K3s/containerd format)')
    .option('--docker-config <file>', 'Docker config.json with registry credentials')
    .option('--concurrency <n>', 'parallel blob downloads', (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1 || n > 64) throw new UserError(`--concurrency '${v}' is not a whole number from 1 to 64`);
      return n;
    })
    .addHelpText(
      'after',
      `
Examples:
  $ kubeprepare images --arch arm64 --out images-arm64.tar
  $ kubeprepare images --arch arm --only edge --out edge-arm.tar
  $ kubeprepare images --arch amd64 --out extra.tar docker.io/library/nginx:1.27 registry.k8s.io/pause:3.10`,
    )
    .action(async (refs: string[], o) => {
      const r = await images({
        manifest: o.manifest,
        platform: parseArch(o.arch),
        outFile: o.out,
        refs,
        ...(o.only ? { only: o.only as Side } : {}),
        ...(o.cacheDir ? { cacheDir: o.cacheDir } : {}),
        engine: o.engine as EngineName,
        ...(o.registries ? { registriesFile: o.registries } : {}),
        ...(o.dockerConfig ? { dockerConfigPath: o.dockerConfig } : {}),
        ...(o.concurrency ? { concurrency: o.concurrency as number } : {}),
        renderer: renderer(),
      });
      io.out(`${r.file}  ${fmtBytes(r.size)}  sha256:${r.sha256}  (${r.images.length} images, ${fmtBytes(r.uniqueBlobBytes)} unique blobs of ${fmtBytes(r.totalBlobBytes)})`);
    });

  program
    .command('verify')
    .description('check a bundle tarball offline: every file, image blob and platform; lists every problem found')
    .argument('<tarball>', 'bundle tarball (.tar, .tar.gz or .tar.zst, detected by content)')
    .option('-a, --arch <arch>', 'check the images against this architecture instead of the one bundle.json names')
    .option('--json', 'machine-readable result: ok, problems[] (kind, subject, message), counts')
    .addHelpText(
      'after',
      `
Examples:
  $ kubeprepare verify kubeprepare-edge-v1.22.0-linux-arm64.tar
  $ kubeprepare verify kubeprepare-cloud-v1.22.0-linux-arm64.tar --arch arm64
  $ kubeprepare verify bundle.tar.gz --json | jq -r '.problems[].message'

Exit codes: 0 the bundle is intact, 1 problems found (all listed), 2 the file cannot be read.`,
    )
    .action(async (file: string, o) => {
      const r = await verify({ file, ...(o.arch ? { platform: parseArch(o.arch) } : {}) });
      io.out(o.json ? JSON.stringify(r, null, 2) : verifyToText(r));
      if (!r.ok) {
        throw UserError.runtime(`${file}: ${r.problems.length} problem${r.problems.length === 1 ? '' : 's'} found`, 'copy the bundle again from the release and check it with sha256sum -c SHA256SUMS');
      }
    });

  program
    .command('inspect')
    .description('show what a bundle tarball holds: components, images, binaries, deduplication (offline)')
    .argument('<tarball>', 'bundle tarball (.tar, .tar.gz or .tar.zst, detected by content)')
    .option('--json', 'machine-readable: components, images[] (ref, digest, platform, size), binaries[], dedup')
    .addHelpText(
      'after',
      `
Examples:
  $ kubeprepare inspect kubeprepare-cloud-v1.22.0-linux-arm64.tar
  $ kubeprepare inspect kubeprepare-edge-v1.22.0-linux-arm64.tar --json | jq '.images[] | {ref, platform}'`,
    )
    .action(async (file: string, o) => {
      const r = await inspect({ file });
      io.out(o.json ? JSON.stringify(r, null, 2) : inspectToText(r));
    });

  return program;
}

/** Runs the CLI; returns the exit code instead of exiting (the entry point exits). */
export async function runCli(argv: string[], io: Io = defaultIo): Promise<number> {
  const program = makeProgram(io);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return 0;
      return 2; // commander already printed the message
    }
    const verbose = Boolean(program.opts().verbose);
    if (isUserError(e)) {
      io.err(`error: ${e.message}`);
      if (e.hint) io.err(`  fix: ${e.hint}`);
      if (verbose && e.stack) io.err(e.stack);
      return e.exitCode;
    }
    const err = e as Error;
    io.err(`error: ${err?.message ?? String(e)}`);
    io.err(verbose ? (err?.stack ?? '') : '  (run with --verbose for the stack trace)');
    return 1;
  }
}

export { UserError };
