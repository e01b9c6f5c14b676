import { fastOutput } from './fast-path.cjs';

// A plain --version/--help is answered from dist/help.json without loading the CLI (src/fast-path.ts).
const argv = process.argv.slice(2);
const fast = fastOutput(argv);
if (fast !== undefined) {
  process.stdout.write(fast);
} else {
  const { runCli } = await import('./cli.js');
  process.exitCode = await runCli(argv);
}
