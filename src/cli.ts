import { Command, CommanderError, Option } from 'commander';
import { UserError, printError } from './errors.js';
import { debugFromEnv, setDebug } from './util/debug.js';
import { COMMANDS, OPTIONS, optionsOf, type CliOptions, type CommandName, type GlobalOptions, type OptionSpec } from './cli-options.js';
import { COMMAND_HELP, PROGRAM_HELP } from './cli-help.js';
import { TOOL_VERSION } from './version.js';
import type { BuildOptions } from './commands/build.js';
import type { PlanOptions } from './commands/plan.js';
import type { RenderOptions } from './commands/render.js';
import type { ImagesOptions } from './commands/images.js';
import type { VerifyOptions } from './commands/verify.js';
import type { InspectOptions } from './commands/inspect.js';

/**
 * The command line: builds commander from the options table (cli-options.ts) and calls one function per
 * command. Each command's module is imported when that command runs, so `--version` and `--help` load
 * commander and the table only. Output goes to stdout, progress and errors to stderr.
 * Exit codes: 0 success, 1 failure while working, 2 bad usage or input, 70 a bug (InternalError).
 */
export interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
  env: NodeJS.ProcessEnv;
  isTTY: boolean;
}

/** What the CLI writes for `s`: each write ends a line. */
export const lineOf = (s: string): string => (s.endsWith('\n') ? s : `${s}\n`);

const defaultIo: Io = {
  out: (s) => process.stdout.write(lineOf(s)),
  err: (s) => process.stderr.write(lineOf(s)),
  env: process.env,
  isTTY: Boolean(process.stderr.isTTY),
};

interface Ctx {
  io: Io;
  /** positional arguments, as commander parsed them */
  args: unknown[];
  global: GlobalOptions;
}

const ACTIONS: { [C in CommandName]: (o: CliOptions<C>, ctx: Ctx) => Promise<void> } = {
  async build(o, { io, global }) {
    const [{ build }, { planToText }, { fmtBytes }] = await Promise.all([import('./commands/build.js'), import('./commands/plan.js'), import('./util/format.js')]);
    const result = await build({ ...o, renderer: await renderer(io, global), ...(o.json ? { events: io.out } : {}) });
    if (o.json) return;
    if (result.dryRun) {
      io.out(planToText(result.plan));
      io.out('\n(dry run: nothing downloaded or written)');
      return;
    }
    for (const b of result.bundles) io.out(`${b.file}  ${fmtBytes(b.size)}  sha256:${b.sha256}`);
    if (result.checksumsFile) io.out(`checksums: ${result.checksumsFile}`);
  },
  async plan(o, { io }) {
    const { plan, planToJson, planToText } = await import('./commands/plan.js');
    const p = await plan(o);
    io.out(o.json ? JSON.stringify(planToJson(p), null, 2) : planToText(p));
  },
  async render(o, { io }) {
    const { render } = await import('./commands/render.js');
    const r = await render(o);
    for (const d of r.dirs) io.out(`${d.dir}  (${d.files.length} files)`);
  },
  async images(o, { io, args, global }) {
    const [{ images }, { fmtBytes }] = await Promise.all([import('./commands/images.js'), import('./util/format.js')]);
    const r = await images({ ...o, refs: args[0] as string[], renderer: await renderer(io, global), ...(o.json ? { events: io.out } : {}) });
    if (o.json) return;
    io.out(`${r.file}  ${fmtBytes(r.size)}  sha256:${r.sha256}  (${r.images.length} images, ${fmtBytes(r.uniqueBlobBytes)} unique blobs of ${fmtBytes(r.totalBlobBytes)})`);
  },
  async verify(o, { io, args }) {
    const { verify, verifyToText } = await import('./commands/verify.js');
    const file = args[0] as string;
    const r = await verify({ ...o, file });
    io.out(o.json ? JSON.stringify(r, null, 2) : verifyToText(r));
    if (!r.ok) {
      throw UserError.runtime('bundle', `${file}: ${r.problems.length} problem${r.problems.length === 1 ? '' : 's'} found`, 'copy the bundle again from the release and check it with sha256sum -c SHA256SUMS');
    }
  },
  async inspect(o, { io, args }) {
    const { inspect, inspectToText } = await import('./commands/inspect.js');
    const r = await inspect({ file: args[0] as string });
    io.out(o.json ? JSON.stringify(r, null, 2) : inspectToText(r));
  },
};

async function renderer(io: Io, global: GlobalOptions) {
  const { chooseRenderer } = await import('./progress/ui.js');
  return chooseRenderer({ quiet: Boolean(global.quiet), env: io.env, isTTY: io.isTTY });
}

/**
 * Compile-time check that the table and the command functions agree: every option the table gives a
 * command is one its function takes (or one the CLI itself consumes, like `--json` output of plan).
 * The values' types are checked where ACTIONS passes them. Listed here: `--json` of plan/verify/inspect
 * (the CLI's output format); render's --binary-mirror (accepted, never used: render downloads nothing);
 * and the flags other engineers wire up now (concurrency, json, verbose of build and images).
 */
type NotPassed = { build: 'concurrency' | 'json' | 'verbose'; plan: 'json'; render: 'binaryMirrors'; images: 'json' | 'verbose'; verify: 'json'; inspect: 'json' };
type Unknown<C extends CommandName, F> = Exclude<keyof CliOptions<C>, keyof F | NotPassed[C]>;
const tableMatchesCommands: [
  Unknown<'build', BuildOptions>, Unknown<'plan', PlanOptions>, Unknown<'render', RenderOptions>,
  Unknown<'images', ImagesOptions>, Unknown<'verify', VerifyOptions>, Unknown<'inspect', InspectOptions>,
] extends [never, never, never, never, never, never] ? true : never = true;
void tableMatchesCommands;

function toOption(spec: OptionSpec): Option {
  const opt = new Option(spec.flags, spec.description);
  if (spec.choices) opt.choices(spec.choices);
  if (spec.parse) opt.argParser(spec.parse as (value: string, previous: unknown) => unknown);
  if ('default' in spec) opt.default(spec.default);
  if (spec.required) opt.makeOptionMandatory();
  return opt;
}

/** The table's values for one command, under the names its function takes; options not given are left out. */
function valuesFor<C extends CommandName>(command: C, raw: Record<string, unknown>): CliOptions<C> {
  const out: Record<string, unknown> = {};
  for (const spec of OPTIONS as readonly OptionSpec[]) {
    if (!spec.commands.includes(command)) continue;
    const v = raw[new Option(spec.flags).attributeName()];
    if (v !== undefined) out[spec.key] = v;
  }
  return out as CliOptions<C>;
}

/** Help text width: fixed, so that src/fast-path.ts can print the text built at `npm run build`. */
export const HELP_WIDTH = 80;

export function makeProgram(io: Io = defaultIo): Command {
  const program = new Command('kubeprepare')
    .description(PROGRAM_HELP.description)
    .version(TOOL_VERSION, '-V, --version');
  for (const spec of optionsOf('global')) program.addOption(toOption(spec));
  program
    // 80 columns in every terminal: the help is the same text everywhere (README, dist/help.json).
    .configureHelp({ helpWidth: HELP_WIDTH })
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) })
    .exitOverride()
    .addHelpText('after', PROGRAM_HELP.examples);

  for (const name of COMMANDS) {
    const help = COMMAND_HELP[name];
    const cmd = program.command(name).description(help.description).configureHelp({ helpWidth: HELP_WIDTH });
    for (const [spec, description] of help.args ?? []) cmd.argument(spec, description);
    for (const spec of optionsOf(name)) cmd.addOption(toOption(spec));
    cmd.addHelpText('after', help.examples).action(async (...a: unknown[]) => {
      const self = a[a.length - 1] as Command;
      const run = ACTIONS[name] as (o: CliOptions<CommandName>, ctx: Ctx) => Promise<void>;
      await run(valuesFor(name, self.optsWithGlobals()), { io, args: self.processedArgs, global: program.opts<GlobalOptions>() });
    });
  }
  return program;
}

/** Runs the CLI; returns the exit code instead of exiting (the entry point exits). */
export async function runCli(argv: string[], io: Io = defaultIo): Promise<number> {
  const program = makeProgram(io);
  const debugOn = () => Boolean(program.opts().verbose) || debugFromEnv(io.env);
  program.hook('preAction', () => setDebug(debugOn() ? io.err : undefined));
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return 0;
      return 2; // commander already printed the message
    }
    return printError(e, io.err, debugOn());
  }
}

export { UserError };
