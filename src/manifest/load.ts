import { readFile } from 'node:fs/promises';
import { relative, resolve, dirname, isAbsolute } from 'node:path';
import { LineCounter, parseDocument, isMap, isSeq, isScalar, isPair, type Node as YamlNode, type Document } from 'yaml';
import type { z } from 'zod';
import { UserError } from '../errors.js';
import { manifestSchema, type Manifest } from './schema.js';

export interface LoadedManifest {
  manifest: Manifest;
  /** Absolute path of the file. */
  path: string;
  /** Path as shown in messages (relative to the cwd when shorter). */
  displayPath: string;
  /** Directory relative paths inside the manifest are resolved against. */
  baseDir: string;
}

export function displayPath(p: string): string {
  const rel = relative(process.cwd(), p);
  return rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : p;
}

/**
 * Reads and validates a versions manifest. Every problem is reported with `file:line:column`, the key
 * path and what was expected; all problems are listed at once (exit code 2).
 */
export async function loadManifest(file: string): Promise<LoadedManifest> {
  const path = resolve(file);
  const shown = displayPath(path);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(`${shown}: cannot read the versions manifest (${code ?? (e as Error).message})`, {
      code: 'manifest',
      hint: 'pass an existing file with --manifest, or run from the repository root where manifests/versions.yaml lives',
    });
  }
  return { manifest: parseManifestText(text, shown), path, displayPath: shown, baseDir: dirname(path) };
}

export function parseManifestText(text: string, shown: string): Manifest {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const lines = doc.errors.map((err) => {
      const pos = lineCounter.linePos(err.pos[0]);
      const at = `${shown}:${pos.line}:${pos.col}`;
      return `${at}: YAML syntax: ${err.message.split('\n')[0]}`;
    });
    throw new UserError(lines.join('\n'), { code: 'manifest', hint: 'fix the YAML syntax at the position shown' });
  }
  const data: unknown = doc.toJS();
  const result = manifestSchema.safeParse(data);
  if (result.success) return result.data;
  const lines = flattenUnions(result.error.issues).map((issue) => formatIssue(issue, doc, lineCounter, shown));
  throw new UserError([...new Set(lines)].join('\n'), { code: 'manifest', hint: `see the comments in manifests/versions.yaml for every key` });
}

function formatIssue(issue: z.core.$ZodIssue, doc: Document, lc: LineCounter, shown: string): string {
  const path = issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p));
  let keyPath = path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${p}`)).join('').replace(/^\./, '');
  let node: YamlNode | null | undefined;
  let message = issue.message;
  if (issue.code === 'unrecognized_keys') {
    // Point at the first unknown key itself.
    const key = issue.keys[0] ?? '';
    node = findKeyNode(doc, path, key);
    keyPath = keyPath ? `${keyPath}.${key}` : key;
    message = `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `'${k}'`).join(', ')} (typo?)`;
  } else {
    node = findNode(doc, path);
    if (issue.code === 'invalid_type') {
      const got = describe(nodeValue(node));
      message = node === undefined ? `missing required key; expected ${issue.expected}` : `expected ${issue.expected}, got ${got}`;
    } else if (issue.code === 'invalid_union') {
      message = `expected ${unionExpectation(issue)}`;
    } else if (issue.code === 'invalid_value') {
      message = `expected one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}, got ${describe(nodeValue(node))}`;
    } else if (issue.code === 'invalid_format' || issue.code === 'custom' || issue.code === 'too_small' || issue.code === 'too_big') {
      message = `${issue.message}${node ? `, got ${describe(nodeValue(node))}` : ''}`;
    }
  }
  // A missing key has no node: point at the parent map.
  let anchor = node;
  for (let i = path.length - 1; anchor === undefined && i >= 0; i--) anchor = findNode(doc, path.slice(0, i));
  const range = anchor?.range ?? doc.contents?.range;
  const pos = range ? lc.linePos(range[0]) : { line: 1, col: 1 };
  return `${shown}:${pos.line}:${pos.col}: ${keyPath || '(top level)'}: ${message}`;
}

/**
 * A union issue (e.g. "an image reference string or a map with ref/role") is replaced by the issues of
 * the branch the value was evidently meant for: the branch without a type mismatch at its root and with
 * the fewest unknown keys, so the message points at the real mistake inside it.
 */
function flattenUnions(issues: z.core.$ZodIssue[]): z.core.$ZodIssue[] {
  const out: z.core.$ZodIssue[] = [];
  for (const issue of issues) {
    if (issue.code !== 'invalid_union' || issue.errors.length === 0) {
      out.push(issue);
      continue;
    }
    const score = (branch: z.core.$ZodIssue[]) =>
      (branch.some((b) => b.code === 'invalid_type' && b.path.length === 0) ? 1000 : 0) +
      branch.filter((b) => b.code === 'unrecognized_keys').length * 10 +
      branch.length;
    const best = [...issue.errors].sort((a, b) => score(a) - score(b))[0] ?? [];
    if (score(best) >= 1000) {
      out.push(issue);
      continue;
    }
    out.push(...flattenUnions(best.map((b) => ({ ...b, path: [...issue.path, ...b.path] }) as z.core.$ZodIssue)));
  }
  return out;
}

function unionExpectation(issue: z.core.$ZodIssueInvalidUnion): string {
  const parts = new Set<string>();
  for (const branch of issue.errors) {
    for (const sub of branch) {
      if (sub.code === 'invalid_type') parts.add(sub.expected);
      else if (sub.code === 'unrecognized_keys') parts.add(`no key ${sub.keys.map((k) => `'${k}'`).join(', ')}`);
      else parts.add(sub.message);
    }
  }
  return [...parts].join(' or ');
}

function nodeValue(node: YamlNode | null | undefined): unknown {
  if (node === undefined) return undefined;
  if (node === null) return null;
  if (isScalar(node)) return node.value;
  if (isMap(node)) return {};
  if (isSeq(node)) return [];
  return undefined;
}

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a map';
  if (typeof v === 'string') return `'${v.length > 60 ? `${v.slice(0, 57)}...` : v}'`;
  return `${typeof v} ${String(v)}`;
}

function findNode(doc: Document, path: (string | number)[]): YamlNode | null | undefined {
  let cur: unknown = doc.contents;
  for (const seg of path) {
    if (isMap(cur)) {
      const pair = cur.items.find((it) => isPair(it) && isScalar(it.key) && String(it.key.value) === String(seg));
      if (!pair) return undefined;
      cur = pair.value;
    } else if (isSeq(cur) && typeof seg === 'number') {
      cur = cur.items[seg];
      if (cur === undefined) return undefined;
    } else {
      return undefined;
    }
  }
  return cur as YamlNode | null;
}

function findKeyNode(doc: Document, mapPath: (string | number)[], key: string): YamlNode | undefined {
  const map = findNode(doc, mapPath);
  if (!isMap(map)) return map ?? undefined;
  const pair = map.items.find((it) => isPair(it) && isScalar(it.key) && String(it.key.value) === key);
  return (pair?.key as YamlNode | undefined) ?? map;
}
