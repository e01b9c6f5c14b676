import { writeFileSync, renameSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { lineOf, makeProgram } from './cli.js';
import { COMMANDS } from './cli-options.js';
import { HELP_CACHE_URL, type HelpCache } from './fast-path.cjs';
import { TOOL_VERSION } from './version.js';

/**
 * Writes dist/help.json (run by `npm run build` after tsc): commander's help for the program and for
 * each command, which src/fast-path.ts prints for a plain `--help` without loading commander.
 */
export function helpTexts(): HelpCache {
  const help: Record<string, string> = {};
  for (const key of ['', ...COMMANDS]) {
    let text = '';
    const program = makeProgram({ out: (s) => (text += lineOf(s)), err: (s) => (text += lineOf(s)), env: {}, isTTY: false });
    try {
      program.parse(key ? [key, '--help'] : ['--help'], { from: 'user' });
    } catch {
      // exitOverride: commander throws after printing the help
    }
    help[key] = text;
  }
  return { version: TOOL_VERSION, help };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const file = fileURLToPath(HELP_CACHE_URL);
  writeFileSync(`${file}.tmp`, `${JSON.stringify(helpTexts(), null, 1)}\n`);
  renameSync(`${file}.tmp`, file);
}
