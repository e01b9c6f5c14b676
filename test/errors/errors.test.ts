import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { InternalError, UserError, abortError, abortReason, fsError, isAbort, isMachineFailure, printError } from '../../src/errors.js';
import { debug, safeUrl, setDebug } from '../../src/util/debug.js';

/** Issue 16 items 3 and 4: the error story's pieces, in-process. */
const printed = (e: unknown, verbose = false) => {
  const lines: string[] = [];
  const code = printError(e, (s) => lines.push(s), verbose);
  return { code, text: lines.join('\n') };
};
const errno = (code: string, path?: string) => Object.assign(new Error(`${code}: failed`), { code, ...(path ? { path } : {}) });

describe('the error story', () => {
  it('a UserError prints message and fix, exits by kind; --verbose adds its code and stack', () => {
    const e = UserError.runtime('not-found', 'x:1 not found at http://127.0.0.1:1/v2/x/manifests/1', 'check the tag');
    assert.deepEqual([e.code, e.exitCode], ['not-found', 1]);
    assert.equal(new UserError('bad flag', { code: 'usage' }).exitCode, 2);
    const plain = printed(e);
    assert.deepEqual([plain.code, plain.text], [1, 'error: x:1 not found at http://127.0.0.1:1/v2/x/manifests/1\n  fix: check the tag']);
    const verbose = printed(e, true);
    assert.match(verbose.text, /^  code: not-found$/m);
    assert.match(verbose.text, /at /);
  });

  it('an InternalError is printed as a bug with its stack and exits 70', () => {
    const r = printed(new InternalError('no engine collected x:1'));
    assert.equal(r.code, 70);
    assert.match(r.text, /^error: internal error: no engine collected x:1$/m);
    assert.match(r.text, /this is a bug in kubeprepare/);
    assert.match(r.text, /InternalError: no engine collected x:1\n\s+at /);
  });

  it('a raw ENOSPC/EACCES/EPERM/EROFS that reaches the top is reported as the machine failure it is', () => {
    const cases: [string, string, RegExp][] = [
      ['ENOSPC', 'disk', /no space left/],
      ['EDQUOT', 'disk', /quota/],
      ['EACCES', 'permission', /permission denied/],
      ['EPERM', 'permission', /not permitted/],
      ['EROFS', 'read-only', /read-only/],
    ];
    for (const [c, code, meaning] of cases) {
      const e = fsError(errno(c, '/data/out/x.tar'));
      assert.ok(e instanceof UserError, c);
      assert.deepEqual([e.code, e.exitCode], [code, 1]);
      assert.match(e.message, new RegExp(`/data/out/x\\.tar: .*\\(${c}\\)$`));
      assert.match(e.message, meaning);
      assert.match(e.hint ?? '', /\/data\/out/);
      const r = printed(errno(c, '/data/out/x.tar'), true);
      assert.equal(r.code, 1);
      assert.match(r.text, new RegExp(`^  code: ${code}$`, 'm'));
    }
    // found in a cause chain; other errors pass unchanged
    assert.ok(isMachineFailure(new Error('wrapped', { cause: errno('ENOSPC') })));
    // a firewall refusing a connection is no filesystem failure
    const refused = Object.assign(errno('EPERM'), { syscall: 'connect', address: '127.0.0.1', port: 5000 });
    assert.equal(fsError(refused), refused);
    assert.ok(!isMachineFailure(new Error('fetch failed', { cause: Object.assign(errno('EACCES'), { syscall: 'connect' }) })));
    const other = errno('ECONNRESET');
    assert.equal(fsError(other, '/x'), other);
    const user = UserError.runtime('network', 'x');
    assert.equal(fsError(user), user);
  });

  it('one abort: abortError, AbortSignal reasons and ABORT_ERR are all aborts; nothing else is', () => {
    assert.ok(isAbort(abortError()));
    assert.ok(isAbort(abortError('another image of this archive failed', new Error('cause'))));
    const c = new AbortController();
    c.abort();
    assert.ok(isAbort(abortReason(c.signal)));
    assert.ok(isAbort(Object.assign(new Error('x'), { code: 'ABORT_ERR' })));
    assert.ok(!isAbort(new Error('aborted')));
    assert.ok(!isAbort(UserError.runtime('network', 'x')));
    assert.ok(!isAbort(undefined));
    const why = new Error('mine');
    const c2 = new AbortController();
    c2.abort(why);
    assert.equal(abortReason(c2.signal), why);
  });
});

describe('the debug channel', () => {
  it('is silent unless enabled, then writes one line per event', () => {
    const lines: string[] = [];
    setDebug(undefined);
    debug('http', 'not shown');
    setDebug((l) => lines.push(l));
    debug('retry', 'GET x: HTTP 503; try 2 of 5');
    setDebug(undefined);
    debug('http', 'not shown either');
    assert.deepEqual(lines, ['debug retry: GET x: HTTP 503; try 2 of 5']);
  });

  it('safeUrl drops user info and masks secret-looking query values, keeping the rest', () => {
    assert.equal(safeUrl('https://user:pw@example.test/v2/x?scope=repository%3Ax%3Apull&service=reg'), 'https://example.test/v2/x?scope=repository%3Ax%3Apull&service=reg');
    const s = safeUrl('https://cdn.test/blob?X-Amz-Signature=abc123&token=t0k3n&expires=9');
    assert.ok(!s.includes('abc123') && !s.includes('t0k3n'), s);
    assert.match(s, /expires=9/);
  });
});
