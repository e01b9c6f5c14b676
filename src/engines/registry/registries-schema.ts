import { z } from 'zod';
import type { MirrorConfig, RegistryAuthConfig, RegistryHostConfig, RegistryTlsConfig, RewriteRule } from './mirrors.js';

/**
 * The zod schema of a K3s-style registries.yaml (the format is described in ./mirrors.ts). Each check
 * carries the wording of its message; src/util/yaml-schema.ts adds `file:line:col: key.path:` in front.
 */

const mapping = { error: 'must be a mapping' };

/** A map with only these keys (`keys` names them in the message for any other). */
function strict<T extends z.ZodRawShape>(shape: T, keys: string) {
  return z.strictObject(shape, {
    error: (iss) => (iss.code === 'unrecognized_keys' ? `unknown key (expected ${keys})` : iss.code === 'invalid_type' ? 'must be a mapping' : undefined),
  });
}

/** An empty value (`docker.io:` with nothing after it) reads as an empty map. */
function orEmpty<T extends z.ZodType>(schema: T) {
  return z.preprocess((v) => v ?? {}, schema);
}

/** The object without its undefined members (so that an absent key stays absent). */
function defined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

const endpointUrl = z.string({ error: 'must be a URL string' }).transform((ep, ctx) => {
  const fail = (message: string) => (ctx.addIssue({ code: 'custom', message }), z.NEVER);
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(ep) ? ep : `https://${ep}`;
  let u: URL;
  try {
    u = new URL(withScheme);
  } catch {
    return fail(`'${ep}' is not a valid URL`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return fail(`'${ep}': only http:// and https:// endpoints are supported`);
  if (u.search || u.hash || u.username || u.password) return fail(`'${ep}': no query, fragment or credentials in endpoint URLs (put credentials under configs)`);
  return withScheme.replace(/\/+$/, '');
});

const rewrite = z.record(z.string(), z.string({ error: 'replacement must be a string' }), mapping).transform((rules, ctx) => {
  const out: RewriteRule[] = [];
  for (const [pattern, replacement] of Object.entries(rules)) {
    try {
      out.push({ pattern: new RegExp(pattern), replacement });
    } catch (e) {
      ctx.addIssue({ code: 'custom', path: [pattern], message: `not a valid regular expression: ${(e as Error).message}` });
    }
  }
  return out;
});

const mirror = strict(
  {
    endpoint: z.array(endpointUrl, { error: 'must be a list of URLs' }).nullish(),
    rewrite: rewrite.nullish(),
  },
  `'endpoint', 'rewrite'`,
).transform((m): MirrorConfig => ({ endpoints: m.endpoint ?? [], rewrite: m.rewrite ?? [] }));

const text = z.string({ error: 'must be a string' });

const auth = strict(
  {
    username: text.optional(),
    password: text.optional(),
    auth: text.refine((v) => Buffer.from(v, 'base64').toString('utf8').includes(':'), 'must be base64 of "username:password"').optional(),
    token: text.optional(),
    identity_token: text.optional(),
    identitytoken: text.optional(),
  },
  'username, password, auth, token, identity_token',
)
  .refine((a) => (a.username === undefined) === (a.password === undefined), 'username and password must be given together')
  .transform(
    (a): RegistryAuthConfig => defined({ username: a.username, password: a.password, auth: a.auth, token: a.token, identityToken: a.identity_token ?? a.identitytoken }),
  );

const filePath = z.string({ error: 'must be a file path' }).min(1, 'must be a file path');

const tls = strict(
  {
    insecure_skip_verify: z.boolean({ error: 'must be true or false' }).optional(),
    ca_file: filePath.optional(),
    cert_file: filePath.optional(),
    key_file: filePath.optional(),
  },
  'insecure_skip_verify, ca_file, cert_file, key_file',
)
  .refine((t) => (t.cert_file === undefined) === (t.key_file === undefined), 'cert_file and key_file must be given together')
  .transform((t): RegistryTlsConfig => defined({ insecureSkipVerify: t.insecure_skip_verify, caFile: t.ca_file, certFile: t.cert_file, keyFile: t.key_file }));

const hostConfig = strict({ auth: auth.nullish(), tls: tls.nullish() }, `'auth', 'tls'`).transform(
  (c): RegistryHostConfig => defined({ auth: c.auth ?? undefined, tls: c.tls ?? undefined }),
);

export const registriesSchema = orEmpty(
  strict(
    {
      mirrors: z.record(z.string(), orEmpty(mirror), mapping).nullish(),
      configs: z.record(z.string(), orEmpty(hostConfig), mapping).nullish(),
    },
    `'mirrors' and/or 'configs'`,
  ),
);
