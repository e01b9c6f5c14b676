import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { blobPath, digestFromHex, digestHex, digestOfBlobPath, isDigest, parseDigest, sha256Digest } from '../../src/oci/digest.js';
import { acceptedPlatforms, configPlatform, formatPlatform, parsePlatformString, platformExact, platformMatches, platformRank } from '../../src/oci/platform.js';
import { isAttestation, parseDescriptor } from '../../src/oci/descriptor.js';
import { createLimiter } from '../../src/util/limit.js';
import { UserError } from '../../src/errors.js';
import { parseArch } from '../../src/platform.js';

const HEX = createHash('sha256').update('kubeprepare').digest('hex');
const D = `sha256:${HEX}`;

describe('oci digest', () => {
  it('accepts exactly sha256:<64 lowercase hex> and brands it', () => {
    assert.equal(parseDigest(D), D);
    assert.equal(isDigest(D), true);
    for (const bad of [HEX, `sha256:${HEX.toUpperCase()}`, `sha256:${HEX.slice(1)}`, `sha512:${HEX}`, `sha256:${HEX} `, '', 42]) {
      assert.equal(isDigest(bad), false, String(bad));
    }
    assert.throws(() => parseDigest(`sha256:${HEX.slice(2)}`), { message: `not a sha256 digest: sha256:${HEX.slice(2)}` });
  });

  it('hashes bytes, converts hex both ways and maps layout paths', () => {
    assert.equal(sha256Digest(Buffer.from('kubeprepare')), D);
    assert.equal(sha256Digest('kubeprepare'), D);
    assert.equal(digestFromHex(HEX), D);
    assert.equal(digestHex(D), HEX);
    assert.equal(digestHex(HEX), HEX, 'a bare hex digest (cache file names) is taken as is');
    assert.throws(() => digestHex('sha256:nothex'), { message: 'not a sha256 digest: sha256:nothex' });
    assert.throws(() => digestFromHex('abc'), /not a sha256 digest: sha256:abc/);
    assert.equal(blobPath(D), `blobs/sha256/${HEX}`);
    assert.throws(() => blobPath('sha256:abc'), /not a sha256 digest/);
    assert.equal(digestOfBlobPath(`blobs/sha256/${HEX}`), D);
    for (const p of [`blobs/sha256/${HEX}/x`, `blobs/sha512/${HEX}`, `./blobs/sha256/${HEX}`, 'index.json']) assert.equal(digestOfBlobPath(p), undefined, p);
  });
});

describe('oci platform matching', () => {
  const arm7 = parseArch('arm');
  const arm6 = parseArch('arm/v6');
  const arm64 = parseArch('arm64');
  const amd64 = parseArch('amd64');

  it('formats and parses os/architecture/variant', () => {
    assert.equal(formatPlatform(arm7), 'linux/arm/v7');
    assert.equal(formatPlatform({ os: 'linux', architecture: 'amd64' }), 'linux/amd64');
    assert.deepEqual(parsePlatformString('linux/arm/v6'), { os: 'linux', architecture: 'arm', variant: 'v6' });
    assert.deepEqual(parsePlatformString('linux/arm64'), { os: 'linux', architecture: 'arm64' });
  });

  it('orders arm variants as containerd platforms.Only does, and keeps amd64/arm64 exact', () => {
    assert.deepEqual(acceptedPlatforms(arm7).map(formatPlatform), ['linux/arm/v7', 'linux/arm/v6', 'linux/arm/v5']);
    assert.deepEqual(acceptedPlatforms(arm6).map(formatPlatform), ['linux/arm/v6', 'linux/arm/v5']);
    assert.deepEqual(acceptedPlatforms(arm64).map(formatPlatform), ['linux/arm64']);
    assert.deepEqual(acceptedPlatforms(amd64).map(formatPlatform), ['linux/amd64']);
  });

  it('ranks what an index offers: normalised variants, never another architecture or OS', () => {
    assert.equal(platformRank(arm7, { os: 'linux', architecture: 'arm', variant: 'v7' }), 0);
    assert.equal(platformRank(arm7, { os: 'linux', architecture: 'arm' }), 0, 'arm without a variant is v7');
    assert.equal(platformRank(arm7, { os: 'linux', architecture: 'arm', variant: '6' }), 1);
    assert.equal(platformRank(arm7, { os: 'linux', architecture: 'arm', variant: 'v5' }), 2);
    assert.equal(platformRank(arm7, { os: 'linux', architecture: 'arm', variant: 'v8' }), -1);
    assert.equal(platformRank(arm6, { os: 'linux', architecture: 'arm', variant: 'v7' }), -1);
    assert.equal(platformRank(arm7, { os: 'linux', architecture: 'arm64' }), -1);
    assert.equal(platformRank(arm64, { os: 'linux', architecture: 'arm64', variant: 'v8' }), 0, 'arm64 v8 is arm64');
    assert.equal(platformRank(amd64, { os: 'windows', architecture: 'amd64' }), -1);
    assert.equal(platformRank(amd64, { architecture: 'amd64' }), -1, 'a missing os is not linux');
    assert.equal(platformMatches(amd64, { os: 'linux', architecture: '386' }), false);
    assert.equal(platformMatches(arm7, { os: 'linux', architecture: 'arm', variant: 'v6' }), true);
    assert.equal(platformExact(arm7, { os: 'linux', architecture: 'arm', variant: 'v6' }), false);
    assert.equal(platformExact(arm7, { os: 'linux', architecture: 'arm', variant: 'v7' }), true);
  });

  it('reads the platform of an image config, and refuses one that is not JSON', () => {
    assert.deepEqual(configPlatform('x', Buffer.from('{"os":"linux","architecture":"arm","variant":"v6","rootfs":{}}')), { os: 'linux', architecture: 'arm', variant: 'v6' });
    assert.deepEqual(configPlatform('x', Buffer.from('{"os":"linux","architecture":"amd64","variant":""}')), { os: 'linux', architecture: 'amd64' });
    assert.throws(() => configPlatform('docker.io/library/x:1', Buffer.from('{')), (e: unknown) => e instanceof UserError && e.message === 'the image config of docker.io/library/x:1 is not valid JSON');
  });
});

describe('oci descriptor', () => {
  it('checks digest and size, defaults the media type and keeps the other fields', () => {
    const d = parseDescriptor('img', { digest: D, size: 3, platform: { os: 'linux', architecture: 'arm64' }, urls: ['u'], extra: 1 }, 'manifests[0]');
    assert.deepEqual(d, { digest: D, size: 3, mediaType: '', platform: { os: 'linux', architecture: 'arm64' }, urls: ['u'], extra: 1 });
    const bad: [unknown, string][] = [
      [null, 'the manifest of img has an invalid descriptor at layers[1]'],
      [{ digest: D }, 'the manifest of img has an invalid descriptor at layers[1]'],
      [{ digest: D, size: -1 }, 'the manifest of img has an invalid descriptor at layers[1]'],
      [{ digest: D, size: 1.5 }, 'the manifest of img has an invalid descriptor at layers[1]'],
      [{ digest: `sha512:${HEX}`, size: 1 }, `the manifest of img uses digest 'sha512:${HEX}' at layers[1]; only sha256 digests are supported`],
    ];
    for (const [v, message] of bad) assert.throws(() => parseDescriptor('img', v, 'layers[1]'), (e: unknown) => e instanceof UserError && e.message === message, JSON.stringify(v));
  });

  it('recognises buildkit attestation entries', () => {
    assert.equal(isAttestation({ digest: D, annotations: { 'vnd.docker.reference.type': 'attestation-manifest' }, platform: { os: 'linux', architecture: 'amd64' } }), true);
    assert.equal(isAttestation({ digest: D, platform: { os: 'unknown', architecture: 'unknown' } }), true);
    assert.equal(isAttestation({ digest: D, platform: { os: 'linux', architecture: 'amd64' } }), false);
  });
});

describe('util limiter', () => {
  it('runs at most n tasks at once, in call order, and a throwing task rejects only its own promise', async () => {
    const limit = createLimiter(2);
    let active = 0;
    let peak = 0;
    const started: number[] = [];
    const gates: (() => void)[] = [];
    const task = (i: number) => () => {
      started.push(i);
      active++;
      peak = Math.max(peak, active);
      return new Promise<number>((resolve) => gates.push(() => {
        active--;
        resolve(i);
      }));
    };
    const runs = [0, 1, 2, 3].map((i) => limit(task(i)));
    const boom = assert.rejects(
      limit(() => {
        throw new Error('boom');
      }),
      /boom/,
    );
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(started, [0, 1]);
    while (gates.length) {
      gates.shift()!();
      await new Promise((r) => setImmediate(r));
    }
    assert.deepEqual(await Promise.all(runs), [0, 1, 2, 3]);
    await boom;
    assert.equal(peak, 2);
    assert.deepEqual(started, [0, 1, 2, 3]);
  });
});
