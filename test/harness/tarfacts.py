# Reads a bundle tarball (plain, gzip, or zstd through the zstd program) with Python's tarfile — a reader
# that shares no code with the product — and prints, as JSON, every entry's header fields and content
# digest, in archive order, and the same for every images/*.tar nested in it.
# Usage: python3 tarfacts.py <tarball>
import hashlib
import io
import json
import re
import subprocess
import sys
import tarfile

TYPES = {tarfile.REGTYPE: 'file', tarfile.AREGTYPE: 'file', tarfile.DIRTYPE: 'dir', tarfile.SYMTYPE: 'symlink', tarfile.LNKTYPE: 'hardlink'}


def raw(path):
    with open(path, 'rb') as f:
        data = f.read()
    if data[:4] == b'\x28\xb5\x2f\xfd':
        return 'zstd', subprocess.run(['zstd', '-dc'], input=data, capture_output=True, check=True).stdout, data
    if data[:2] == b'\x1f\x8b':
        import gzip
        return 'gzip', gzip.decompress(data), data
    return 'none', data, data


def facts(tar_bytes, nested):
    out = []
    with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode='r:') as t:
        for m in t.getmembers():
            e = {
                'name': m.name + ('/' if m.isdir() else ''),
                'type': TYPES.get(m.type, repr(m.type)),
                'mode': oct(m.mode),
                'mtime': m.mtime,
                'uid': m.uid,
                'gid': m.gid,
                'uname': m.uname,
                'gname': m.gname,
                'size': m.size,
                'pax': sorted(m.pax_headers.keys()),
            }
            if m.isfile():
                data = t.extractfile(m).read()
                e['sha256'] = hashlib.sha256(data).hexdigest()
                if nested and re.search(r'/images/[^/]+\.tar$', m.name):
                    e['entries'] = facts(data, False)
            out.append(e)
    return out


kind, tar_bytes, data = raw(sys.argv[1])
print(json.dumps({
    'compression': kind,
    # gzip header: MTIME (bytes 4-7) and OS (byte 9), which vary with the machine unless fixed
    'gzipHeader': {'mtime': int.from_bytes(data[4:8], 'little'), 'os': data[9]} if kind == 'gzip' else None,
    'tarSha256': hashlib.sha256(tar_bytes).hexdigest(),
    'entries': facts(tar_bytes, True),
}))
