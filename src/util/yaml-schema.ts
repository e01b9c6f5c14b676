import { LineCounter, parseDocument, isMap, isSeq, isScalar, isPair, type Node as YamlNode, type Document } from 'yaml';
import type { z } from 'zod';
import { UserError, type ErrorCode } from '../errors.js';

/**
 * YAML checked against a zod schema, with every problem reported as `file:line:column: key.path: message`
 * (the position found from the YAML document's node ranges), all problems at once, as one UserError.
 * Used for the versions manifest (src/manifest/load.ts) and registries.yaml (src/engines/registry).
 */
export interface YamlSchemaOptions {
  /** The code of the UserError (`manifest` for the versions manifest, `input` for other files). */
  code: ErrorCode;
  /** The hint of the UserError for schema problems. */
  hint: string;
  /**
   * Keep each issue's own message (the wording the schema gives in its `error` options) instead of the
   * generic "expected <type>, got <value>" / "unknown key 'x' (typo?)".
   */
  schemaMessages?: boolean;
  /** Quote key path segments that are not plain words: `mirrors."docker.io".endpoint[0]`. */
  quoteKeys?: boolean;
}

/** Parses `text` (shown as `shown` in messages) and returns the schema's output, or throws a UserError. */
export function parseYamlWithSchema<S extends z.ZodType>(text: string, shown: string, schema: S, opts: YamlSchemaOptions): z.output<S> {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const lines = doc.errors.map((err) => {
      const pos = lineCounter.linePos(err.pos[0]);
      const at = `${shown}:${pos.line}:${pos.col}`;
      return `${at}: YAML syntax: ${err.message.split('\n')[0]}`;
    });
    throw new UserError(lines.join('\n'), { code: opts.code, hint: 'fix the YAML syntax at the position shown' });
  }
  const data: unknown = doc.toJS();
  const result = schema.safeParse(data);
  if (result.success) return result.data;
  const lines = flattenUnions(result.error.issues).map((issue) => formatIssue(issue, doc, lineCounter, shown, opts));
  throw new UserError([...new Set(lines)].join('\n'), { code: opts.code, hint: opts.hint });
}

function formatIssue(issue: z.core.$ZodIssue, doc: Document, lc: LineCounter, shown: string, opts: YamlSchemaOptions): string {
  const path = issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p));
  const segment = (p: string | number) => (typeof p === 'number' ? `[${p}]` : `.${opts.quoteKeys && !/^[\w-]+$/.test(p) ? `"${p}"` : p}`);
  let keyPath = path.map(segment).join('').replace(/^\./, '');
  let node: YamlNode | null | undefined;
  if (issue.code === 'unrecognized_keys') {
    // Point at the first unknown key itself.
    const key = issue.keys[0] ?? '';
    node = findKeyNode(doc, path, key);
    keyPath = `${keyPath}${segment(key)}`.replace(/^\./, '');
  } else {
    node = findNode(doc, path);
  }
  const message = opts.schemaMessages ? issue.message : genericMessage(issue, node);
  // A missing key has no node: point at the parent map.
  let anchor = node;
  for (let i = path.length - 1; anchor === undefined && i >= 0; i--) anchor = findNode(doc, path.slice(0, i));
  const range = anchor?.range ?? doc.contents?.range;
  const pos = range ? lc.linePos(range[0]) : { line: 1, col: 1 };
  return `${shown}:${pos.line}:${pos.col}: ${keyPath || '(top level)'}: ${message}`;
}

/** "expected <type>, got <what the file has>" and the like, for a schema without wording of its own. */
function genericMessage(issue: z.core.$ZodIssue, node: YamlNode | null | undefined): string {
  switch (issue.code) {
    case 'unrecognized_keys':
      return `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `'${k}'`).join(', ')} (typo?)`;
    case 'invalid_type':
      return node === undefined ? `missing required key; expected ${issue.expected}` : `expected ${issue.expected}, got ${describe(nodeValue(node))}`;
    case 'invalid_union':
      return `expected ${unionExpectation(issue)}`;
    case 'invalid_value':
      return `expected one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}, got ${describe(nodeValue(node))}`;
    case 'invalid_format':
    case 'custom':
    case 'too_small':
    case 'too_big':
      return `${issue.message}${node ? `, got ${describe(nodeValue(node))}` : ''}`;
    default:
      return issue.message;
  }
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
