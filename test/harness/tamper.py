# Tampering with bundle tarballs through an independent tar implementation: Python's tarfile.
# Loaded by test/harness/tamper.ts ahead of a test's own few lines of Python (never imported alone).
# Nothing here uses the product's tar code: a bundle is read with tarfile, edited in memory, and written
# back with tarfile (POSIX pax format), so a tampered copy is what another tool would make.
import hashlib
import io
import json
import sys
import tarfile

SRC, DEST = sys.argv[1], sys.argv[2]
ARGS = sys.argv[3:]


def sha256(b):
    return hashlib.sha256(b).hexdigest()


class Tar:
    """A tar held in memory as (TarInfo, bytes|None) pairs, in archive order.
    `prefix` is prepended to the relative paths the methods take (the bundle's top directory)."""

    def __init__(self, data, prefix=''):
        self.members = []
        with tarfile.open(fileobj=io.BytesIO(data), mode='r:') as t:
            for m in t.getmembers():
                self.members.append([m, t.extractfile(m).read() if m.isfile() else None])
        self.prefix = prefix

    @classmethod
    def bundle(cls, path):
        with open(path, 'rb') as f:
            data = f.read()
        t = cls(data)
        t.prefix = t.members[0][0].name.split('/')[0] + '/'
        return t

    def _find(self, rel):
        for pair in self.members:
            if pair[0].name == self.prefix + rel:
                return pair
        raise KeyError(rel)

    def names(self):
        return [m.name[len(self.prefix):] for m, _ in self.members if m.name.startswith(self.prefix)]

    def has(self, rel):
        return any(m.name == self.prefix + rel for m, _ in self.members)

    def get(self, rel):
        return self._find(rel)[1]

    def json(self, rel):
        return json.loads(self.get(rel))

    def put(self, rel, data, mode=0o644):
        """Replaces a file's content (keeping its header fields) or appends a new regular file."""
        if isinstance(data, str):
            data = data.encode()
        try:
            pair = self._find(rel)
            pair[0].size = len(data)
            pair[1] = data
        except KeyError:
            ti = tarfile.TarInfo(self.prefix + rel)
            ti.size, ti.mode, ti.mtime = len(data), mode, self.members[0][0].mtime
            self.members.append([ti, data])

    def put_json(self, rel, obj):
        self.put(rel, json.dumps(obj, indent=2) + '\n')

    def remove(self, rel):
        before = len(self.members)
        self.members = [p for p in self.members if p[0].name != self.prefix + rel]
        if len(self.members) == before:
            raise KeyError(rel)

    def link(self, rel, target, kind):
        """Appends a symlink (kind 'sym') or hardlink (kind 'hard') entry."""
        ti = tarfile.TarInfo(self.prefix + rel)
        ti.type = tarfile.SYMTYPE if kind == 'sym' else tarfile.LNKTYPE
        ti.linkname = target
        ti.mtime = self.members[0][0].mtime
        self.members.append([ti, None])

    def inner(self, rel):
        return Tar(self.get(rel))

    def tobytes(self):
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode='w:', format=tarfile.PAX_FORMAT) as t:
            for m, data in self.members:
                t.addfile(m, io.BytesIO(data) if data is not None else None)
        return out.getvalue()

    def save(self, path):
        with open(path, 'wb') as f:
            f.write(self.tobytes())

    # --- OCI layout helpers (for images/images.tar)
    def blob(self, digest):
        return self.get('blobs/sha256/' + digest.split(':')[1])

    def blob_json(self, digest):
        return json.loads(self.blob(digest))

    def put_blob(self, data):
        d = 'sha256:' + sha256(data)
        if not self.has('blobs/sha256/' + d[7:]):
            self.put('blobs/sha256/' + d[7:], data)
        return d

    def blob_names(self):
        return [n for n in self.names() if n.startswith('blobs/sha256/') and self.get(n) is not None]

    def image(self, ref):
        """The index.json descriptor of image `ref`."""
        for d in self.json('index.json')['manifests']:
            if d.get('annotations', {}).get('io.containerd.image.name') == ref:
                return d
        raise KeyError(ref)

    def image_blobs(self, ref):
        """Digests of ref's manifest, config and layers."""
        d = self.image(ref)
        m = self.blob_json(d['digest'])
        return [d['digest'], m['config']['digest']] + [l['digest'] for l in m['layers']]

    def drop_unused_blobs(self):
        used = set()
        for d in self.json('index.json')['manifests']:
            m = self.blob_json(d['digest'])
            used.update([d['digest'], m['config']['digest']] + [l['digest'] for l in m['layers']])
        for n in self.blob_names():
            if 'sha256:' + n.split('/')[-1] not in used:
                self.remove(n)


def layout_facts(img):
    """What bundle.json says about an images archive, computed from the layout itself."""
    images = {}
    total = 0
    for d in img.json('index.json')['manifests']:
        m = img.blob_json(d['digest'])
        cfg = img.blob_json(m['config']['digest'])
        size = d['size'] + m['config']['size'] + sum(l['size'] for l in m['layers'])
        total += size
        plat = '/'.join([cfg['os'], cfg['architecture']] + ([cfg['variant']] if cfg.get('variant') else []))
        ref = d['annotations']['io.containerd.image.name']
        images[ref] = dict(manifestDigest=d['digest'], configDigest=m['config']['digest'], platform=plat, size=size)
    unique = sum(len(img.get(n)) for n in img.blob_names())
    return images, unique, total


def fix_lists(b, relist_images=True):
    """Makes bundle.json and SHA256SUMS agree with the bundle's current content, as a careful forger
    would: every file's sha256/size, the images archive's digest and blob totals and (relist_images)
    each listed image's digests, platform and size as the archive now has them."""
    inv = b.json('bundle.json')
    if inv['images'].get('archive') and b.has(inv['images']['archive']):
        data = b.get(inv['images']['archive'])
        inv['images']['sha256'], inv['images']['size'] = sha256(data), len(data)
        if relist_images:
            facts, unique, total = layout_facts(Tar(data))
            inv['images']['uniqueBlobBytes'], inv['images']['totalBlobBytes'] = unique, total
            for li in inv['images']['list']:
                f = facts.get(li['ref'])
                if f:
                    li['purl'] = li['purl'].replace(li['manifestDigest'].replace(':', '%3A'), f['manifestDigest'].replace(':', '%3A'))
                    li.update(f)
    for f in inv['files']:
        if b.has(f['path']):
            data = b.get(f['path'])
            f['sha256'], f['size'] = sha256(data), len(data)
    for bi in inv['binaries']:
        if b.has(bi['path']):
            bi['sha256'], bi['size'] = sha256(b.get(bi['path'])), len(b.get(bi['path']))
    b.put_json('bundle.json', inv)
    paths = [line.split('  ', 1)[1] for line in b.get('SHA256SUMS').decode().splitlines() if line]
    b.put('SHA256SUMS', ''.join(f'{sha256(b.get(p))}  {p}\n' for p in sorted(paths) if b.has(p)))
