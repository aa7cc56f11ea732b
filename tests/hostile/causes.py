"""Hostile files by cause: for each way a weights reader can go wrong, several files that show it, each
built another way, so that a fix of the cause and not of one example is what makes them pass.

Every file here is refused by the reader with one error line naming it. `load_cases` are given to
`09_file_io --load` (the state-dict path), `resume_cases` are planted as the newest checkpoint of
`11_checkpoints --resume` (the any-value path), which must skip them with a warning naming them.
"""
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


def main(out, case, resume_case):
    def path(name):
        return os.path.join(out, name + ".pt")

    good = tensor()
    one = {"data/0": b"\0" * 4}
    mlp_entries, mlp_recs = mlp_records()

    # 1. Shared references: 2^depth paths through a few KB.
    case("shared_dicts", "entry 'a' is a dict, not a tensor",
         PROTO + shared_levels(40, lambda body, again: b"}(" + s("a") + body + s("b") + again + b"u",
                               pdict((s("w"), good))) + b".")
    case("shared_lists_in_a_dict", "entry 'w' is a list, not a tensor",
         PROTO + b"}" + s("w") + shared_levels(40, lambda body, again: b"](" + body + again + b"e",
                                                    b"]") + b"s.")
    case("shared_modules", "reached by two paths",
         PROTO + shared_levels(40, lambda body, again: module_object([(s("a"), body), (s("b"), again)]),
                               module_object([(s("weight"), good)])) + b".",
         records={"data/0": b"\0" * 16, **torchscript(tensors=["weight"], modules=["a", "b"])})
    resume_case("shared_lists",
                PROTO + shared_levels(60, lambda body, again: b"](" + body + again + b"e", b"]") + b".")
    resume_case("shared_tuples",
                PROTO + pdict((s("settings"), shared_levels(60, lambda body, again: body + again + b"\x86",
                                                            integer(7))),) + b".")
    resume_case("shared_dicts_in_a_checkpoint",
                PROTO + pdict((s("model"), shared_levels(60, lambda body, again: pdict((s("a"), body),
                                                                                      (s("b"), again)),
                                                         pdict((s("w"), good))))) + b".")

    # 2. Dicts of many keys: each key must not scan the ones before it.
    many = 100000
    case("dict_of_100k_int_keys", "a state dict's keys are strings",
         PROTO + b"}(" + b"".join(integer(i) + b"N" for i in range(many)) + b"u.")
    case("dict_of_100k_str_keys", "is a None, not a tensor",
         PROTO + b"}(" + b"".join(s(f"k{i}") + b"N" for i in range(many)) + b"u.")
    case("module_of_60k_submodules", "not declared as a module",
         PROTO + module_object([(s(f"m{i}"), module_object([])) for i in range(60000)]) + b".",
         records={"data/0": b"\0" * 16, **torchscript(tensors=[f"m{i}" for i in range(60000)])})
    case("state_dict_of_20k_tensors", "more",
         PROTO + b"}(" + b"".join(s(f"t{i}") + tensor(numel=4, size=(), stride=()) for i in range(20000))
         + b"u.")
    resume_case("dict_of_100k_keys", PROTO + b"}(" + b"".join(integer(i) + b"N" for i in range(many)) + b"u.")

    # 3. Views: a tensor's extent is its shape, not its storage; no view may be copied out to be checked.
    case("stride_zero_2gib", "does not fit the model",
         PROTO + pdict((s("hidden.weight"), tensor(numel=1, size=(1 << 15, 1 << 14), stride=(0, 0)))) + b".",
         records=one)
    case("stride_zero_8gib_doubles", "does not fit the model",
         PROTO + pdict((s("hidden.weight"),
                        tensor(dtype="DoubleStorage", numel=1, size=(1 << 10,) * 3, stride=(0,) * 3))) + b".",
         records={"data/0": b"\0" * 8})
    case("stride_zero_4tib", "does not fit the model",
         PROTO + pdict((s("hidden.weight"), tensor(numel=1, size=(1 << 20, 1 << 20), stride=(0, 0)))) + b".",
         records=one)
    big = 2 << 20  # 8 MiB of floats, referenced by 256 views
    case("views_of_one_storage", "does not fit the model",
         PROTO + b"}(" + b"".join(s(f"v{i}") + tensor(numel=big, size=(big,)) for i in range(256)) + b"u.",
         records={"data/0": b"\0" * (4 * big)})
    resume_case("views_of_one_storage",
                PROTO + pdict((s("model"), b"}(" + b"".join(s(f"v{i}") + tensor(numel=big, size=(big,))
                                                            for i in range(256)) + b"u")) + b".",
                records={"data/0": b"\0" * (4 * big)})
    resume_case("stride_zero_2gib",
                PROTO + pdict((s("model"), pdict((s("hidden.weight"),
                                                   tensor(numel=1, size=(1 << 15, 1 << 14), stride=(0, 0)))))) +
                b".", records=one)

    # 4. The machine's own memory: each value costs what it is, drawn from one budget.
    case("a_million_nones", "holds a list, not a dict", PROTO + b"](" + b"N" * 1000000 + b"e.")
    case("a_million_empty_tuples", "holds a list, not a dict", PROTO + b"](" + b")" * 1000000 + b"e.")
    dims = tensor(numel=1, size=(1,) * 64, stride=(1,) * 64)
    case("tensors_of_64_dimensions", "budget of 64 MiB",
         PROTO + b"](" + dims * (5000000 // len(dims)) + b"e.", records=one)
    case("strings_beyond_the_budget", "budget",
         PROTO + b"](" + (b"X" + struct.pack("<I", 1 << 20) + b"x" * (1 << 20)) * 60 + b"e.")
    resume_case("a_million_nones", PROTO + b"](" + b"N" * 1000000 + b"e.")

    # 5. The central directory is as large as its end record says only if the file holds it.
    sparse = [("directory_claims_3gib", 3, False), ("directory_claims_40gib_zip64", 40, True)]
    for name, gigabytes, zip64 in sparse:
        try:
            sparse_zip_claiming(path(name), gigabytes, zip64)
        except OSError:
            continue  # a filesystem without sparse files: the case is left out
        case(name, "zip64 directory larger than PyTorch reads" if zip64 else "directory is damaged", None)

    # 6. Errors from LibTorch or the allocator name the file too.
    case("int_tensor_requiring_grad", "only floating-point tensors can require gradients",
         PROTO + pdict((s("w"), tensor(dtype="LongStorage", numel=2, size=(2,)).replace(b"\x89", b"\x88", 1)))
         + b".")
    case("numel_past_int64", "more elements than",
         PROTO + pdict((s("w"), tensor(numel=1, size=(1 << 40, 1 << 40), stride=(0, 0)))) + b".", records=one)

    # 7. Arithmetic on values from the file, checked.
    case("empty_tensor_with_huge_sizes", "does not fit the model",
         PROTO + pdict((s("w"), tensor(numel=1, size=(0, 1 << 62, 4), stride=(1, 1, 1)))) + b".", records=one)

    # 8. Files that could be read two ways: read as PyTorch reads them, or refused.
    two_end_records(path("two_end_records"), trailing_valid=False)
    case("two_end_records", "end record", None)
    case("parameter_with_hooks", "backward hooks",
         PROTO + pdict((s("w"), glob("torch._utils", "_rebuild_parameter") + b"(" + good + b"\x88" +
                        glob("collections", "OrderedDict") + b")R" + s("h") + integer(1) + b"stR")) + b".")
    case("storage_under_two_dtypes", "as two dtypes",
         PROTO + pdict((s("a"), good), (s("b"), tensor(dtype="IntStorage"))) + b".")
    case("storage_under_two_sizes", "declares 2 elements",
         PROTO + pdict((s("a"), good), (s("b"), tensor(numel=2, size=(2,)))) + b".")
    recs = dict(mlp_recs)
    recs["byteorder"] = b"big"
    case("byteorder_big", "big-endian", PROTO + b"}(" + b"".join(k + v for k, v in mlp_entries) + b"u.",
         records=recs)
    recs = dict(mlp_recs)
    recs["byteorder"] = b"middle"
    case("byteorder_unknown", "byte order", PROTO + b"}(" + b"".join(k + v for k, v in mlp_entries) + b"u.",
         records=recs)
    case("module_with_dotted_attribute", "named twice",
         PROTO + module_object([(s("hidden.weight"), good),
                                (s("hidden"), module_object([(s("weight"), good)]))]) + b".",
         records={"data/0": b"\0" * 16, **torchscript(tensors=["hidden.weight", "weight"], modules=["hidden"])})
    # Protocol 4's opcodes: torch.load(weights_only=True) refuses them in every version.
    w = s("w")
    for name, body in {"frame": b"\x95" + struct.pack("<Q", 20) + pdict((w, good)),
                       "memoize": b"}\x94" + b"(" + w + good + b"u",
                       "stack_global": b"X\x0b\0\0\0collectionsX\x0b\0\0\0OrderedDict\x93)R",
                       "short_binunicode": b"}(\x8c\x01w" + good + b"u",
                       "binunicode8": b"}(\x8d" + struct.pack("<Q", 1) + b"w" + good + b"u"}.items():
        case("opcode_" + name, "is not one a state dict needs", b"\x80\x04" + body + b".")
    # torch.load restores storages only on devices it knows; the suite reads CUDA ones as map_location="cpu".
    for name, location in {"cup": "cup", "empty": "", "cuda_index_leading_zero": "cuda:01",
                           "cuda_index_past_int8": "cuda:128", "cuda_index_negative": "cuda:-1",
                           "cpu_capitals": "CPU", "mps": "mps", "meta": "meta"}.items():
        case("storage_location_" + name, "does not know how to restore",
             PROTO + pdict((s("w"), tensor(location=location))) + b".")
    case("dict_with_int_and_str_key", "a state dict's keys are strings",
         PROTO + pdict((s("0"), good), (integer(0), good)) + b".")

    # 9. TorchScript methods, however they are spelt.
    spellings = {
        "def_tab": "class Planted(Module):\n  def\t__setstate__(self, state):\n    pass\n",
        "def_formfeed": "class Planted(Module):\n  def\x0c__setstate__(self, state):\n    pass\n",
        "def_continued": "class Planted(Module):\n  def \\\n    __setstate__(self, state):\n    pass\n",
        "def_crlf": "class Planted(Module):\r\n  def __setstate__(self, state):\r\n    pass\r\n",
        "def_after_comment": "class Planted(Module):  # def\n  training : bool\n  def  forward(self):\n    pass\n",
    }
    for name, code in spellings.items():
        torchscript_like(path("code_" + name), code)
        case("code_" + name, "defines", None)

    # 10. Bytes from the file are quoted before they reach a terminal.
    case("key_with_escape_sequence", "\\x1b[31m",
         PROTO + pdict((s("\x1b[31mhidden.weight\x07\r"), good)) + b".")
    case("key_of_8mib", "bytes, cut)", PROTO + pdict((s("k" * (8 << 20)), good)) + b".")
    case("global_with_control_bytes", "\\x1b", PROTO + glob("os\x1b[2J", "system\x07") + b")R.")
    case("key_with_line_separator", "\\u2028", PROTO + pdict((s("hidden\u2028weight"), good)) + b".")
    case("key_with_bidi_override", "\\u202e", PROTO + pdict((s("\u202ethgiew.neddih"), good)) + b".")
    case("key_with_paragraph_separator_and_bom", "\\u2029\\ufeff",
         PROTO + pdict((s("w\u2029\ufeff"), good)) + b".")
    case("storage_key_with_control_bytes", "\\x1b",
         PROTO + pdict((s("w"), tensor(key="\x1b]0;owned\x07"))) + b".")

    # 11. What converted values really cost: a tensor or a string reached many times through the memo is
    # one object, as in Python; a dict costs its hash table.
    dims64 = tensor(numel=1, size=(1,) * 64, stride=(1,) * 64)
    resume_case("memo_refs_to_a_64_dimension_tensor",
                PROTO + b"](" + dims64 + put(0) + get(0) * 350000 + b"e.", records=one)
    resume_case("memo_refs_to_a_tensor_in_a_dict",
                PROTO + pdict((s("model"), b"](" + tensor() + put(0) + get(0) * 300000 + b"e")) + b".")
    resume_case("one_key_dicts", PROTO + b"](" + b"}K\x00Ns" * 120000 + b"e.")
    resume_case("one_key_dicts_of_strings", PROTO + b"](" + (b"}" + s("k") + s("v") + b"s") * 100000 + b"e.")
    resume_case("memo_refs_to_a_16mib_string",
                PROTO + b"](" + b"X" + struct.pack("<I", 16 << 20) + b"x" * (16 << 20) + put(0) + get(0) * 100000
                + b"e.")
    resume_case("memo_refs_to_a_string_as_dict_keys",
                PROTO + b"](" + s("k" * (1 << 20)) + put(0) + (b"}" + get(0) + b"Ns") * 2000 + b"e.")

    # 12. A small view of a huge storage keeps what it views: 5 KB (a generator state's size) of a 256 MiB
    # record (2.5 times the memory bound; the 1 GiB of the first report would only take longer to read),
    # reached as a checkpoint's rng_state, alone, and twice at both ends of the record.
    gib = 256 << 20
    for name, views in {"rng_state_view_of_a_256mib_record": [(0, 5056)],
                        "two_small_views_at_both_ends_of_a_256mib_record": [(0, 5056), (gib - 5056, 5056)]}.items():
        pickle = PROTO + pdict((s("rng_state"), b"(" + b"".join(
            tensor(dtype="ByteStorage", numel=gib, offset=o, size=(n,), stride=(1,)) for o, n in views) + b"t"),
                               (s("epoch"), integer(0))) + b"."
        try:
            sparse_record_zip(os.path.join(out, "resume_" + name + ".pt"), pickle, gib)
        except OSError:
            continue  # a filesystem without sparse files: the case is left out
        resume_case(name, None)

    # 13. The zip archive's directory, checked as miniz (PyTorch's zip reader, 1.13's copy and 2.6's) checks
    # it: one file per check, each a valid archive with that one field changed. docs/RELIABILITY.md's table.
    def raw(name, data):
        with open(path(name), "wb") as f:
            f.write(data)
    base = torch_save_zip()
    for name, data, expected in [
            ("zip64_locator_of_no_disks", with_zip64(base, locator_disks=0), "multi-part"),
            ("zip64_locator_of_two_disks", with_zip64(base, locator_disks=2), "multi-part"),
            ("zip64_entries_on_this_disk_differ", with_zip64(base, entries_here=48), "multi-part"),
            ("zip64_record_on_disk_one", with_zip64(base, disk=1, cd_disk=1), "multi-part"),
            ("zip64_directory_on_disk_one", with_zip64(base, cd_disk=1), "multi-part"),
            ("zip64_record_too_short", with_zip64(base, record_size=43), "damaged zip64 record"),
            ("zip64_entries_past_uint32", with_zip64(base, entries_here=1 << 32, entries=1 << 32), "zip64"),
            ("end_entries_on_this_disk_differ", with_classic_end(base, entries_here=2), "multi-part"),
            ("end_on_disk_one", with_classic_end(base, disk=1, cd_disk=1), "multi-part"),
            ("entry_on_disk_two", with_entry_field(base, 34, "<H", 2), "on another disk"),
            ("entry_on_disk_65535", with_entry_field(base, 34, "<H", 0xFFFF), "on another disk"),
            ("entry_with_masked_local_header", with_entry_field(base, 8, "<H", 0x2000), "encrypted"),
            ("entry_strongly_encrypted", with_entry_field(base, 8, "<H", 0x0041), "encrypted"),
            ("zip64_record_offset_past_the_file", with_zip64_locator_offset(base, 1 << 40), "damaged zip64 record"),
            ("entry_signature_damaged", with_entry_field(base, 0, "<I", 0x02014B51), "directory is damaged"),
            ("entry_local_header_past_the_file", with_entry_field(base, 42, "<I", 0x7FFFFFFF),
             "lies outside the archive"),
            ("entry_zip64_extra_field_past_its_end", zip64_extra_field_past_its_end(base), "damaged extra field"),
            ("folder_name_of_511_bytes", torch_save_zip("a" * 511), "more than the 511 bytes"),
            ("folder_name_of_60000_bytes", torch_save_zip("a" * 60000), "more than the 511 bytes"),
            ("entry_with_compressed_patched_data", with_entry_field(base, 8, "<H", 0x0020), "patched data"),
            ("entry_marked_as_a_folder", with_entry_field(base, 38, "<I", 0x10), "marked as a folder"),
            ("entry_sizes_say_nothing_was_stored", with_entry_field(base, 20, "<I", 0), "damaged sizes"),
            ("entry_local_header_past_the_file_by_its_offset_field",
             with_entry_field(with_entry_field(base, 42, "<I", len(base) - 40), 20, "<I", 16), "outside the archive"),
            # Python's zipfile cuts a name at a NUL: the bytes are changed after it wrote them.
            ("folder_name_with_a_nul", base.replace(b"archive/", b"arc\0ive/"), "NUL byte"),
            ("byteorder_big_only_in_capitals", torch_save_zip_with_names(extra={"BYTEORDER": b"big"}), "big-endian"),
            ("two_names_differing_in_case", torch_save_zip_with_names(extra={"DATA/0": b"\1" * 16}), "appears twice"),
            ("version_only_in_capitals_says_99",
             torch_save_zip_with_names({"version": ".DATA/VERSION"}, values={".DATA/VERSION": b"99\n"},
                                       extra={"version": b"3\n"}), "archive version '99")]:
        raw(name, data)
        case(name, expected, None)

    # 14. Each callable by the opcode PyTorch's unpicklers accept it by: functions by REDUCE, TorchScript's
    # classes by NEWOBJ (1.13 and 2.6 refuse a tensor made by NEWOBJ; 2.6 would make an empty
    # OrderedDict by NEWOBJ where 1.13 refuses it).
    assert good.endswith(b"tR")
    od_reduce = glob("collections", "OrderedDict") + b")R"
    od_newobj = glob("collections", "OrderedDict") + b")\x81"
    parameter = glob("torch._utils", "_rebuild_parameter") + b"(" + good + b"\x89" + od_reduce + b"t"
    for name, value in {"newobj_rebuild_tensor": good[:-1] + b"\x81",
                        "newobj_rebuild_parameter": parameter + b"\x81",
                        "newobj_ordered_dict_of_hooks": good.replace(od_reduce, od_newobj),
                        "newobj_ordered_dict_in_a_parameter": (parameter + b"R").replace(
                            od_reduce + b"t", od_newobj + b"t")}.items():
        case(name, "NEWOBJ of", PROTO + pdict((s("w"), value)) + b".")
    case("newobj_ordered_dict_as_the_state_dict", "NEWOBJ of collections.OrderedDict",
         PROTO + od_newobj + b"(" + s("w") + good + b"u.")
    case("reduce_of_a_torchscript_module", "REDUCE of __torch__.Module",
         PROTO + module_object([(s("weight"), good)]).replace(b")\x81", b")R") + b".",
         records={"data/0": b"\0" * 16, **torchscript(tensors=["weight"])})
    resume_case("newobj_rebuild_tensor", PROTO + pdict((s("rng_state"), good[:-1] + b"\x81")) + b".")
    # 2.x's seventh argument of _rebuild_tensor_v2 sets a view's negative or conjugate bit (1.13 refuses any
    # seventh argument): refused, but for the None and {} that 2.x skips. And APPENDS checks its target
    # even with nothing to append, as Python does.
    for name, metadata in {"neg": pdict((s("neg"), b"\x88")), "conj": pdict((s("conj"), b"\x88")),
                           "an_int": integer(1)}.items():
        case("tensor_metadata_" + name, "negative or conjugate bit",
             PROTO + pdict((s("w"), good[:-2] + metadata + b"tR")) + b".")
    for name, target in {"dict": b"}", "ordered_dict": od_reduce, "tuple": b")"}.items():
        case("appends_of_nothing_to_a_" + name, "APPENDS to a", PROTO + target + b"(e.")

    # 7 (continued). A checkpoint's settings are input too: each within the range its option accepts.
    def checkpoint(**settings):
        run = {"epochs": integer(3), "batch_size": integer(32), "examples": integer(2048), "seed": integer(0),
               "lr": b"G" + struct.pack(">d", 0.05)}
        run.update(settings)
        return (PROTO + pdict((s("settings"), pdict(*((s(k), v) for k, v in run.items()))),
                              (s("epoch"), integer(0)), (s("step"), integer(0))) + b".")
    resume_case("batch_size_at_int64_max", checkpoint(batch_size=integer(2**63 - 1)))
    resume_case("examples_at_int64_max", checkpoint(examples=integer(2**63 - 1)))
    resume_case("negative_batch_size", checkpoint(batch_size=integer(-2**63)))
    resume_case("lr_nan", checkpoint(lr=b"G" + struct.pack(">d", float("nan"))))
    resume_case("lr_negative", checkpoint(lr=b"G" + struct.pack(">d", -0.05)))
    resume_case("lr_infinite", checkpoint(lr=b"G" + struct.pack(">d", float("inf"))))
    resume_case("epochs_at_int64_max", checkpoint(epochs=integer(2**63 - 1)))
