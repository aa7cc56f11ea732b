"""The pieces the hostile cases (tests/hostile/causes.py) are made of: pickle fragments, module objects,
and archives crafted byte by byte (zips with one field of a directory or end record changed, sparse files
that claim gigabytes, torch.save archives renamed)."""
import os
import struct
import zipfile
import zlib

from make_hostile import archive, binunicode, glob, integer, tensor

PROTO = b"\x80\x02"


def put(i):
    return b"r" + struct.pack("<I", i)


def get(i):
    return b"j" + struct.pack("<I", i)


def pdict(*entries):
    """A dict literal of (pickled key, pickled value) pairs."""
    return b"}(" + b"".join(k + v for k, v in entries) + b"u"


def s(text):
    return binunicode(text)


def module_object(attributes):
    """A LibTorch module object (what torch::save writes): __torch__.Module built from a dict."""
    return glob("__torch__", "Module") + b")\x81" + pdict(*attributes) + b"b"


def torchscript(tensors=(), modules=()):
    """What makes an archive a TorchScript one whose code declares __torch__.Module and its attributes, so
    that its module objects are read (torch.jit.load refuses an attribute the code does not declare)."""
    code = "class Module(Module):\n  training : bool\n" + "".join(
        f'  __annotations__["{a}"] = Tensor\n' for a in tensors) + "".join(
        f'  __annotations__["{a}"] = __torch__.Module\n' for a in modules)
    return {"constants.pkl": PROTO + b").", "code/__torch__.py": code.encode()}


def mlp_records(fill=b"\0"):
    """Records and entries of a state dict that fits lesson 09's MLP (hidden 20 -> 256, out 256 -> 10)."""
    shapes = {"hidden.weight": (256, 20), "hidden.bias": (256,), "output.weight": (10, 256), "output.bias": (10,)}
    entries, records = [], {}
    for i, (name, shape) in enumerate(shapes.items()):
        numel = 1
        for d in shape:
            numel *= d
        stride = (shape[1], 1) if len(shape) == 2 else (1,)
        entries.append((s(name), tensor(key=str(i), numel=numel, size=shape, stride=stride)))
        records[f"data/{i}"] = fill * (4 * numel)
    return entries, records


def write_zip(path, entries, deflate=()):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in entries:
            kind = zipfile.ZIP_DEFLATED if name in deflate else zipfile.ZIP_STORED
            z.writestr(zipfile.ZipInfo(name), data, compress_type=kind)


def shared_levels(depth, make_level, leaf):
    """Level 0 is leaf (memoized as 0); level k holds level k-1 twice, once in full and once by GET."""
    body = leaf + put(0)
    for level in range(1, depth + 1):
        body = make_level(body, get(level - 1)) + put(level)
    return body


def sparse_zip_claiming(path, gigabytes, zip64):
    """A sparse file of `gigabytes` whose end record says its central directory fills all of it."""
    pickle = PROTO + b"}."
    name = b"archive/data.pkl"
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 0, 0, 0x21, zlib.crc32(pickle), len(pickle),
                        len(pickle), len(name), 0) + name + pickle
    size = gigabytes << 30
    with open(path, "wb") as f:
        f.write(local)
        f.truncate(size)
        cd_offset = len(local)
        if zip64:
            z64_at = size - 22 - 20 - 56
            cd_size = z64_at - cd_offset
            f.seek(z64_at)
            f.write(struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, 1, 1, cd_size, cd_offset))
            f.write(struct.pack("<IIQI", 0x07064B50, 0, z64_at, 1))
            f.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0))
        else:
            cd_size = size - 22 - cd_offset
            f.seek(size - 22)
            f.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, cd_size, cd_offset, 0))


def two_end_records(path, trailing_valid):
    """Two archives in one file. The last end-of-directory signature (the one PyTorch's reader, miniz,
    takes) describes archive B; archive A's end record carries the rest of the file as its comment."""
    import io
    def zip_bytes(pickle, base):
        buf = io.BytesIO()
        buf.write(b"\0" * base)
        with zipfile.ZipFile(buf, "a") as z:
            z.writestr(zipfile.ZipInfo("archive/data.pkl"), pickle)
        return buf.getvalue()
    a_pickle = PROTO + pdict((s("a"), integer(1))) + b"."
    b_pickle = PROTO + pdict((s("b"), integer(2))) + b"."
    b = zip_bytes(b_pickle, 0)
    b_end = b[-22:]
    whole = zip_bytes(a_pickle, len(b) - 22)  # archive A laid after archive B's entries and directory
    a_part = b[:-22] + whole[len(b) - 22:]
    a_end = a_part[-22:]
    tail = b_end if trailing_valid else b_end[:20] + struct.pack("<H", 100)
    a_end = a_end[:20] + struct.pack("<H", len(tail) + 3)
    with open(path, "wb") as f:
        f.write(a_part[:-22] + a_end + tail + b"\0\0\0")


def sparse_record_zip(path, pickle, record_bytes, small_records=()):
    """A stored archive whose record data/0 holds `record_bytes` zeros as a hole in a sparse file, beside
    data.pkl, small records and the version: a huge storage that costs no disk."""
    entries = [("archive/data.pkl", pickle)] + [("archive/" + n, d) for n, d in small_records]
    crc = 0
    chunk = b"\0" * (1 << 20)
    for _ in range(record_bytes >> 20):
        crc = zlib.crc32(chunk, crc)
    crc = zlib.crc32(b"\0" * (record_bytes & ((1 << 20) - 1)), crc)
    directory = b""
    with open(path, "wb") as f:
        def local(name, size, crc32):
            at = f.tell()
            n = name.encode()
            f.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 0, 0, 0x21, crc32, size, size, len(n), 0) + n)
            return struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 0, 0, 0x21, crc32, size, size, len(n),
                               0, 0, 0, 0, 0, at) + n
        for name, data in entries:
            directory += local(name, len(data), zlib.crc32(data))
            f.write(data)
        directory += local("archive/data/0", record_bytes, crc)
        f.seek(record_bytes, os.SEEK_CUR)
        directory += local("archive/version", 2, zlib.crc32(b"3\n"))
        f.write(b"3\n")
        count = len(entries) + 2
        cd_at = f.tell()
        f.write(directory)
        f.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count, len(directory), cd_at, 0))


def torch_save_zip(folder="archive"):
    """The bytes of a stored archive as torch.save lays it out, with a one-tensor state dict, under `folder`."""
    import io
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in [("data.pkl", PROTO + pdict((s("w"), tensor())) + b"."), ("data/0", b"\0" * 16),
                           ("version", b"3\n")]:
            z.writestr(zipfile.ZipInfo(folder + "/" + name), data)
    return buf.getvalue()


def torch_save_zip_with_names(renamed=None, values=None, extra=None):
    """torch_save_zip's archive with records renamed ({old: new}), given other bytes ({name: bytes}), and
    records added ({name: bytes}), in that order."""
    import io
    renamed, values, extra = renamed or {}, values or {}, extra or {}
    records = [("data.pkl", PROTO + pdict((s("w"), tensor())) + b"."), ("data/0", b"\0" * 16), ("version", b"3\n")]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in [(renamed.get(n, n), d) for n, d in records] + list(extra.items()):
            z.writestr(zipfile.ZipInfo("archive/" + name), values.get(name, data))
    return buf.getvalue()


def end_record(data):
    at = data.rindex(struct.pack("<I", 0x06054B50))
    return at, list(struct.unpack("<IHHHHIIH", data[at:at + 22]))


def with_classic_end(data, **fields):
    """The archive with fields of its end record changed: disk, cd_disk, entries_here, entries."""
    at, e = end_record(data)
    for name, value in fields.items():
        e[["sig", "disk", "cd_disk", "entries_here", "entries", "cd_size", "cd_offset", "comment"].index(name)] = value
    return data[:at] + struct.pack("<IHHHHIIH", *e) + data[at + 22:]


def with_zip64(data, locator_disks=1, record_size=44, disk=0, cd_disk=0, entries_here=None, entries=None):
    """The archive with a zip64 end record and its locator before the end record, which then says 0xFFFF
    and 0xFFFFFFFF as zip64 writers do; the zip64 record's fields as given."""
    at, e = end_record(data)
    count = e[4]
    z64 = struct.pack("<IQHHIIQQQQ", 0x06064B50, record_size, 45, 45, disk, cd_disk,
                      count if entries_here is None else entries_here, count if entries is None else entries,
                      e[5], e[6])
    locator = struct.pack("<IIQI", 0x07064B50, 0, at, locator_disks)
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return data[:at] + z64 + locator + end


def with_zip64_locator_offset(data, offset):
    """A zip64 archive whose locator points at `offset` for its zip64 record."""
    z = with_zip64(data)
    at = z.rindex(struct.pack("<I", 0x07064B50))
    return z[:at + 8] + struct.pack("<Q", offset) + z[at + 16:]


def zip64_extra_field_past_its_end(data):
    """The archive with its last entry's sizes at 0xFFFFFFFF (in zip64's extra field) and an extra field
    whose length runs past the extra data. The entry is the last in the directory, so the other entries
    keep their places."""
    at, e = end_record(data)
    p, last = e[6], None
    while p < at:
        n, x, c = struct.unpack("<HHH", data[p + 28:p + 34])
        last = p
        p += 46 + n + x + c
    n, x, c = struct.unpack("<HHH", data[last + 28:last + 34])
    header = bytearray(data[last:last + 46 + n])
    struct.pack_into("<II", header, 20, 0xFFFFFFFF, 0xFFFFFFFF)
    extra = struct.pack("<HH", 0x0001, 40) + b"\0" * 16  # says 40 bytes, holds 16
    struct.pack_into("<H", header, 30, len(extra))
    directory = data[e[6]:last] + bytes(header) + extra
    e[5] = len(directory)
    return data[:e[6]] + directory + struct.pack("<IHHHHIIH", *e)


def with_entry_field(data, offset, fmt, value):
    """The archive with one field of every central directory entry changed (offset within the entry)."""
    at, e = end_record(data)
    out = bytearray(data)
    p = e[6]
    while p < at:
        struct.pack_into(fmt, out, p + offset, value)
        n, x, c = struct.unpack("<HHH", out[p + 28:p + 34])
        p += 46 + n + x + c
    return bytes(out)


def torchscript_like(path, code):
    """A torch::save-style archive (constants.pkl, code/) whose code defines a method, written as `code`."""
    pickle = PROTO + module_object([(s("training"), b"\x88")]) + b"."
    write_zip(path, [("archive/data.pkl", pickle), ("archive/constants.pkl", PROTO + b")."),
                     ("archive/code/__torch__.py", code.encode()), ("archive/version", b"1\n")],
              deflate=("archive/code/__torch__.py",))
