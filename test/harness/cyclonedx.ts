import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import addFormatsModule from 'ajv-formats';

/**
 * Validates a document against the CycloneDX 1.5 JSON schema, as published by CycloneDX in the
 * `@cyclonedx/cyclonedx-library` package (res/schema/bom-1.5.SNAPSHOT.schema.json with the SPDX licence
 * list and JSF schemas it references), with Ajv and ajv-formats — the validator and options the
 * CycloneDX library itself uses (its `_optPlug.node/__jsonValidators/ajv`), nothing of ours.
 */
const require = createRequire(import.meta.url);
const SCHEMAS = join(dirname(require.resolve('@cyclonedx/cyclonedx-library/package.json')), 'res', 'schema');
const load = (f: string) => JSON.parse(readFileSync(join(SCHEMAS, f), 'utf8')) as object;

// ajv-formats is CommonJS with `module.exports = formatsPlugin` and a `default` property.
const addFormats = ((addFormatsModule as unknown as { default?: typeof addFormatsModule }).default ?? addFormatsModule) as unknown as (a: Ajv) => Ajv;

let validator: ((doc: unknown) => boolean) & { errors?: ErrorObject[] | null } | undefined;

function compile() {
  const ajv = new Ajv({
    strict: false,
    strictSchema: false,
    useDefaults: false,
    addUsedSchema: false,
    // The schema's relative $refs resolve to these ids (the library registers them the same way).
    schemas: {
      'http://cyclonedx.org/schema/spdx.SNAPSHOT.schema.json': load('spdx.SNAPSHOT.schema.json'),
      'http://cyclonedx.org/schema/jsf-0.82.SNAPSHOT.schema.json': load('jsf-0.82.SNAPSHOT.schema.json'),
    },
    loadSchema: (uri: string) => {
      throw new Error(`remote schema refused: ${uri}`);
    },
  });
  addFormats(ajv);
  // Formats ajv-formats lacks. An IRI reference is a URI reference once its non-ASCII characters are
  // percent-encoded (RFC 3987 section 3.1); idn-email likewise as an email address.
  const uriRef = ajv.formats['uri-reference'];
  const email = ajv.formats['email'];
  const test = (f: unknown, s: string) => (f instanceof RegExp ? f.test(s) : typeof f === 'function' ? Boolean(f(s)) : typeof f === 'object' && f && 'validate' in f ? test((f as { validate: unknown }).validate, s) : false);
  const ascii = (s: string) => s.replace(/[^\x00-\x7f]/gu, (c) => encodeURIComponent(c));
  ajv.addFormat('iri-reference', (s: string) => test(uriRef, ascii(s)));
  ajv.addFormat('idn-email', (s: string) => test(email, ascii(s)));
  return ajv.compile(load('bom-1.5.SNAPSHOT.schema.json'));
}

/** The schema errors for `doc` (empty when valid). */
export function cycloneDx15Errors(doc: unknown): ErrorObject[] {
  validator ??= compile();
  return validator(doc) ? [] : [...(validator.errors ?? [])];
}
