/**
 * The README's options table and the CLI's (src/cli-options.ts) as comparable rows.
 * `node --import tsx test/cli/options-table.ts` prints the table's rows as Markdown, for pasting
 * between the `<!-- options -->` markers of README.md when an option changes.
 */
import { OPTIONS, type OptionSpec } from '../../src/cli-options.js';

export interface Row {
  option: string;
  commands: string;
  meaning: string;
  default: string;
}

const cell = (s: string) => s.replace(/\|/g, '\\|');

function defaultCell(o: OptionSpec): string {
  if (o.docDefault !== undefined) return o.docDefault;
  if (o.required) return 'required';
  if (Array.isArray(o.default)) return o.default.length === 0 ? 'none' : o.default.join(', ');
  if (o.default !== undefined) return `\`${String(o.default)}\``;
  return o.flags.includes('<') ? '' : 'off';
}

export function rowsFromTable(): Row[] {
  return (OPTIONS as readonly OptionSpec[]).map((o) => ({
    option: `\`${o.flags}\``,
    commands: o.global ? 'all' : o.commands.join(', '),
    meaning: o.choices ? `${o.description} (one of: ${o.choices.join(', ')})` : o.description,
    default: defaultCell(o),
  }));
}

export const START = '<!-- options: generated from src/cli-options.ts, checked by test/cli/readme.test.ts -->';
export const END = '<!-- /options -->';

/** The rows between the markers; cells split on unescaped `|`. */
export function rowsFromReadme(readme: string): Row[] {
  const from = readme.indexOf(START);
  const to = readme.indexOf(END, from);
  if (from < 0 || to < 0) throw new Error(`README.md has no options table between '${START}' and '${END}'`);
  const lines = readme.slice(from + START.length, to).split('\n').filter((l) => l.startsWith('|'));
  return lines.slice(2).map((l) => {
    const cells = l.slice(1, l.lastIndexOf('|')).split(/(?<!\\)\|/).map((c) => c.trim().replace(/\\\|/g, '|'));
    return { option: cells[0] ?? '', commands: cells[1] ?? '', meaning: cells[2] ?? '', default: cells[3] ?? '' };
  });
}

const key = (r: Row) => `${r.option} [${r.commands}]`;

/** What differs between the README's rows and the table's: one message per missing, extra or changed row. */
export function differences(readme: Row[], table: Row[]): string[] {
  const out: string[] = [];
  const inReadme = new Map(readme.map((r) => [key(r), r]));
  const inTable = new Map(table.map((t) => [key(t), t]));
  for (const t of table) {
    const r = inReadme.get(key(t));
    if (!r) out.push(`README.md has no row for ${key(t)}`);
    else if (r.meaning !== t.meaning || r.default !== t.default) out.push(`README.md's row for ${key(t)} says '${r.meaning}' (default '${r.default}'), src/cli-options.ts '${t.meaning}' (default '${t.default}')`);
  }
  for (const r of readme) if (!inTable.has(key(r))) out.push(`README.md lists ${key(r)}, which src/cli-options.ts does not have`);
  if (inReadme.size !== readme.length) out.push('README.md lists an option twice');
  return out;
}

export function markdown(rows: Row[]): string {
  const head = ['| option | commands | meaning | default |', '|---|---|---|---|'];
  return [START, '', ...head, ...rows.map((r) => `| ${cell(r.option)} | ${cell(r.commands)} | ${cell(r.meaning)} | ${cell(r.default)} |`), '', END].join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) console.log(markdown(rowsFromTable()));
