import Handlebars from 'handlebars';
import { readFile, readdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { UserError } from '../errors.js';
import type { RenderContext } from './context.js';

/** POSIX-shell single-quoting: `it's` → `'it'\''s'`. Safe for any string in any shell position. */
export function shellQuote(value: unknown): string {
  const s = String(value);
  if (s !== '' && /^[A-Za-z0-9_@%+=:,./-]+$/.test(s)) return s;
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export interface TemplateFile {
  /** Path relative to the side's template root, e.g. `install.sh`, `manifests/metrics-server.yaml`. */
  path: string;
  content: string;
  /** 0o755 for `*.sh` (scripts), 0o644 otherwise. */
  mode: number;
}

/**
 * A private Handlebars instance: `strict` (a missing variable is an error), `noEscape` (output is shell
 * and YAML, not HTML), with helpers:
 *   {{sq x}}           shell-quote x
 *   {{join list sep}}  join an array
 *   {{json x}}         JSON.stringify (also a valid YAML scalar/flow value)
 *   {{eq a b}}         equality, for #if
 * and partials from scripts-templates/partials/*.hbs ({{> shell-lib}}).
 */
export function createRenderer(partials: Record<string, string> = {}): typeof Handlebars {
  const hb = Handlebars.create();
  hb.registerHelper('sq', (v: unknown) => shellQuote(v));
  hb.registerHelper('join', (list: unknown, sep: unknown) => {
    if (!Array.isArray(list)) throw new Error('join: first argument must be a list');
    return list.join(typeof sep === 'string' ? sep : ' ');
  });
  hb.registerHelper('json', (v: unknown) => JSON.stringify(v));
  hb.registerHelper('eq', (a: unknown, b: unknown) => a === b);
  for (const [name, body] of Object.entries(partials)) hb.registerPartial(name, body);
  return hb;
}

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return out;
    throw e;
  }
  for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await listFiles(p)));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

/** A template tree as read from disk: partials by name, and each directory's files (sorted by path) with their sources. */
interface TemplateSources {
  partials: Record<string, string>;
  dirs: Map<string, { rel: string; source: string }[]>;
}

/** The sources of `<templatesRoot>/partials`, `common` and both sides, every file read at once (not one after the other). */
async function loadSources(templatesRoot: string): Promise<TemplateSources> {
  const read = async (dir: string) => {
    const files = await listFiles(dir);
    return Promise.all(files.map(async (f) => ({ rel: relative(dir, f).split('\\').join('/'), source: await readFile(f, 'utf8') })));
  };
  const [partialFiles, ...subs] = await Promise.all(['partials', ...SUBDIRS].map((d) => read(join(templatesRoot, d))));
  const partials: Record<string, string> = {};
  for (const f of partialFiles!) partials[f.rel.replace(/\.hbs$/, '')] = f.source;
  return { partials, dirs: new Map(SUBDIRS.map((d, k) => [d, subs[k]!])) };
}

const SUBDIRS = ['common', 'cloud', 'edge'] as const;

/**
 * Renders of one build: the template sources are read once (every bundle renders from the same ones),
 * and a side rendered with the same context is rendered once (a build renders each bundle's templates to
 * derive what it needs, plan/needs.ts, and again for the bundle itself: the second is the first).
 */
export class RenderMemo {
  readonly sides = new Map<string, Promise<TemplateFile[]>>();
  readonly sources = new Map<string, Promise<TemplateSources>>();
}

/**
 * Renders every template of one side: `<templatesRoot>/common/**` then `<templatesRoot>/<side>/**`
 * (a side file overrides a common one with the same path). Returns files sorted by path.
 */
export function renderSide(templatesRoot: string, ctx: RenderContext, memo?: RenderMemo): Promise<TemplateFile[]> {
  if (!memo) return loadSources(templatesRoot).then((src) => renderSources(src, ctx));
  const done = memoized(memo.sides, `${templatesRoot}\0${JSON.stringify(ctx)}`, () =>
    memoized(memo.sources, templatesRoot, () => loadSources(templatesRoot)).then((src) => renderSources(src, ctx)),
  );
  return done.then((files) => files.map((f) => ({ ...f })));
}

/** `map`'s promise for `key`, made by `make` on first use; a rejected one is forgotten (the next call tries again). */
function memoized<V>(map: Map<string, Promise<V>>, key: string, make: () => Promise<V>): Promise<V> {
  let p = map.get(key);
  if (!p) {
    map.set(key, (p = make()));
    p.catch(() => map.delete(key));
  }
  return p;
}

function renderSources(src: TemplateSources, ctx: RenderContext): TemplateFile[] {
  const hb = rendererWith(src.partials);
  const byPath = new Map<string, TemplateFile>();
  for (const sub of ['common', ctx.side] as const) {
    for (const { rel, source } of src.dirs.get(sub) ?? []) {
      byPath.set(rel, { path: rel, content: renderOne(hb, `${sub}/${rel}`, source, ctx), mode: rel.endsWith('.sh') ? 0o755 : 0o644 });
    }
  }
  return [...byPath.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/*
 * A build renders both sides' templates for every platform twice (once to derive what each bundle needs,
 * once for the bundle): the same sources, compiled once per renderer and the renderer made once per set
 * of partials. `build --dry-run --arch amd64,arm64,arm` (2026-12-02, 2-core VM): Handlebars compiling
 * took ~120 ms of its 0.79 s, each template compiled 12 times.
 */
const renderers = new Map<string, typeof Handlebars>();
const compiled = new WeakMap<typeof Handlebars, Map<string, Handlebars.TemplateDelegate>>();

/** createRenderer(partials), one per distinct set of partials in this process (they hold no state of a render). */
function rendererWith(partials: Record<string, string>): typeof Handlebars {
  const key = JSON.stringify(Object.entries(partials).sort(([a], [b]) => (a < b ? -1 : 1)));
  let hb = renderers.get(key);
  if (!hb) renderers.set(key, (hb = createRenderer(partials)));
  return hb;
}

function compiledFor(hb: typeof Handlebars, source: string): Handlebars.TemplateDelegate {
  let byHb = compiled.get(hb);
  if (!byHb) compiled.set(hb, (byHb = new Map()));
  let t = byHb.get(source);
  if (!t) byHb.set(source, (t = hb.compile(source, { strict: true, noEscape: true })));
  return t;
}

export function renderOne(hb: typeof Handlebars, templateName: string, source: string, ctx: object): string {
  try {
    return compiledFor(hb, source)(ctx);
  } catch (e) {
    const msg = (e as Error).message;
    const missing = /"(.+?)" not defined in.*? - (\d+):(\d+)/s.exec(msg);
    if (missing) {
      throw new UserError(`scripts-templates/${templateName}:${missing[2]}:${Number(missing[3]) + 1}: variable '${missing[1]}' is not defined`, {
        code: 'template',
        hint: 'use a key of RenderContext (src/render/context.ts) or add it there',
      });
    }
    throw new UserError(`scripts-templates/${templateName}: ${msg.split('\n')[0]}`, { code: 'template', hint: 'fix the Handlebars syntax of this template' });
  }
}
