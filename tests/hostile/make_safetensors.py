#!/usr/bin/env python3
"""Writes hostile safetensors files, each built byte by byte to attack one rule of the safetensors reader,
with Python's verdict on each.

usage: make_safetensors.py OUT_DIR

Writes OUT_DIR/<case>.safetensors for every single-file case; a sharded case is a folder OUT_DIR/<case>/
holding model.safetensors.index.json and its shards (in <case>/inner/ when the index names a shard outside
its folder, so that "../x.safetensors" exists). OUT_DIR/cases.json maps each file's path relative to OUT_DIR
to {"python": "loaded" | "refused", "why": the rule it attacks, "error": Python's exception as
"Type: message", or null}. The verdict is not written down by hand: it is what safetensors.torch.load_file
does with the file in this Python, and for an index what agree_with_python.read_index's rules give (each
shard loads, is a file name in the index's folder, and holds exactly the tensors weight_map gives it), so on
a PyTorch that has uint16 or float8 some cases load. Without safetensors the files are written all the same,
with "python": null. Every file is small: the header lengths past 100,000,000 are declared, not written.
"""
import json
import os
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fuzz"))

U64_MAX = 2**64 - 1
D8 = struct.pack("<2f", 1.0, 2.0)  # F32 [1, 2]
X = '"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}'  # the entry that D8 fills


def st(header, data=D8, n=None):
    """A safetensors file: the 8-byte little-endian header length (n, or the header's real length), the
    header (str as UTF-8, or bytes as they are) and the data."""
    header = header.encode() if isinstance(header, str) else header
    return struct.pack("<Q", len(header) if n is None else n) + header + data


def obj(*fields, data=D8):
    """A file whose header is the JSON object of these fields."""
    return st("{" + ",".join(fields) + "}", data)


def entry(name="x", dtype='"F32"', shape="[2]", offsets="[0,8]", extra=""):
    return '"%s":{"dtype":%s,"shape":%s,"data_offsets":%s%s}' % (name, dtype, shape, offsets, extra)


def valid(*tensors, metadata=None):
    """A well-formed file of (name, dtype, shape, data) in the given order, offsets packed."""
    fields, data = [], b""
    if metadata is not None:
        fields.append('"__metadata__":' + json.dumps(metadata, separators=(",", ":")))
    for name, dtype, shape, raw in tensors:
        fields.append(entry(name, '"%s"' % dtype, json.dumps(list(shape), separators=(",", ":")),
                            "[%d,%d]" % (len(data), len(data) + len(raw))))
        data += raw
    header = "{" + ",".join(fields) + "}"
    return st(header + " " * (-len(header) % 8), data)


def f32(*values):
    return struct.pack("<%df" % len(values), *values)


def header_length_cases():
    """The 8-byte header length."""
    return [
        # The 8-byte header length.
        ("empty_file", "a file of 0 bytes", b""),
        ("shorter_than_8", "a file of 7 bytes, shorter than the header length", b"\x02\0\0\0\0\0\0"),
        ("header_length_zero", "header length 0: no JSON at all", st("", b"")),
        ("header_length_past_end", "header length 100 in a file of 10 bytes", st("{}", b"", n=100)),
        ("header_length_one_past_end", "header length one more than the file holds", st("{}", b"", n=3)),
        ("header_length_u64_max", "header length 2^64-1 (8 + N wraps around)", st("{}", b"", n=U64_MAX)),
        ("header_length_2_63", "header length 2^63 (negative as a signed integer)", st("{}", b"", n=2**63)),
        ("header_length_100000001", "header length 100,000,001, one past safetensors' limit, in a short file",
         st("{}", b"", n=100_000_001)),
        ("header_length_100000000", "header length 100,000,000, the limit itself, in a short file",
         st("{}", b"", n=100_000_000)),
        ("header_cuts_json", "a header length that ends the header inside the JSON", st("{" + X + "}", D8, n=20)),
    ]


def json_cases():
    """The header: one JSON object, nested within serde_json's limit, each key once."""
    deep = lambda d, o="[", c="]": obj(entry(extra=',"extra":' + o * d + c * d))  # noqa: E731
    deep_objects = lambda d: obj(entry(extra=',"extra":' + '{"a":' * d + "1" + "}" * d))  # noqa: E731
    return [
        # The header is one JSON object.
        ("header_not_json", "the header is not JSON", st("not json", b"")),
        ("header_array", "the header is a JSON array", st("[]", b"")),
        ("header_array_of_entry", "the header is an array holding an entry", st("[{" + X + "}]")),
        ("header_string", "the header is a JSON string", st('"abc"', b"")),
        ("header_null", "the header is JSON null", st("null", b"")),
        ("header_number", "the header is a JSON number", st("1", b"")),
        ("header_unterminated", "an object never closed", st("{", b"")),
        ("header_trailing_comma", "a trailing comma in the object", st("{" + X + ",}")),
        ("header_single_quotes", "a key in single quotes", st("{'x':1}", b"")),
        ("header_only_spaces", "a header of 8 spaces", st(" " * 8, b"")),
        ("header_empty_object", "header {} and no data: no tensors", st("{}", b"")),
        ("header_empty_object_padded", "header {} padded with spaces as the writer pads it", st("{}      ", b"")),
        ("whitespace_leading", "spaces, a tab and a newline before '{'", st(" \t\n {" + X + "}")),
        ("whitespace_trailing", "spaces after '}' (the writer's padding)", st("{" + X + "}   ")),
        ("whitespace_trailing_tab_newline", "tab, newline, CR after '}'", st("{" + X + "}\t\n\r")),
        ("trailing_form_feed", "a form feed after '}' (not JSON whitespace)", st("{" + X + "}\f")),
        ("trailing_nul", "a NUL byte after '}'", st("{" + X + "}\0")),
        ("trailing_nul_then_garbage", "a NUL byte after '}', then a letter", st("{" + X + "}\0x")),
        ("trailing_nul_then_object", "a NUL byte after '}', then a second object", st("{" + X + "}\0{}")),
        ("trailing_nbsp", "a no-break space (C2 A0) after '}'", st(("{" + X + "}").encode() + b"\xc2\xa0")),
        ("trailing_second_object", "a second JSON value after the object", st("{" + X + "}{}")),
        ("trailing_garbage", "a letter after '}'", st("{" + X + "}x")),
        # Nesting: serde_json's limit is 128 levels, the top object being level 1.
        ("deep_125", "125 nested arrays in an unknown field: 127 levels in all, the deepest accepted", deep(125)),
        ("deep_126", "126 nested arrays in an unknown field: 128 levels, one too many", deep(126)),
        ("deep_125_objects", "125 nested objects in an unknown field: 127 levels", deep_objects(125)),
        ("deep_126_objects", "126 nested objects in an unknown field: 128 levels", deep_objects(126)),
        ("deep_100000", "100,000 nested arrays in an unknown field", deep(100_000)),
        ("deep_100000_objects", "100,000 nested objects in an unknown field", deep_objects(100_000)),
        ("deep_100000_top", "100,000 nested arrays as the whole header", st("[" * 100_000 + "]" * 100_000, b"")),
        ("deep_shape", "130 nested arrays as a shape", obj(entry(shape="[" * 130 + "]" * 130))),
        # Duplicates.
        ("duplicate_key_last_wins", "a tensor named twice: the last entry ([0,4], shape [1]) is the one read",
         obj(X, entry(shape="[1]", offsets="[0,4]"), data=f32(1.0))),
        ("duplicate_key_first_invalid", "a tensor named twice, the first entry with an unknown dtype",
         obj(entry(dtype='"NOPE"'), X)),
        ("duplicate_key_identical", "the same entry twice", obj(X, X)),
        ("duplicate_metadata", "__metadata__ twice", obj('"__metadata__":{"a":"b"}', '"__metadata__":{"a":"b"}', X)),
        ("duplicate_key_in_metadata", "a key twice inside __metadata__: the last value is the one read",
         st('{"__metadata__":{"a":"1","a":"2"},' + X + "}")),
        ("duplicate_dtype", "dtype twice in an entry", obj(entry(extra=',"dtype":"F32"'))),
        ("duplicate_shape", "shape twice in an entry", obj(entry(extra=',"shape":[2]'))),
        ("duplicate_data_offsets", "data_offsets twice in an entry", obj(entry(extra=',"data_offsets":[0,8]'))),
        ("duplicate_unknown_field", "an unknown field twice in an entry", obj(entry(extra=',"u":1,"u":2'))),
        ("duplicate_dtype_then_unknown", "dtype twice, then an unknown field twice: serde refuses the first",
         obj(entry(extra=',"dtype":"F32","u":1,"u":1'))),
        ("duplicate_shape_invalid_then_unknown", "an invalid shape given first, shape again, an unknown field twice",
         obj('"x":{"shape":"bad","dtype":"F32","shape":[2],"data_offsets":[0,8],"u":1,"u":1}')),
        ("dtype_map_repeated_key", "a dtype written as {\"F32\":null,\"F32\":null}",
         obj(entry(dtype='{"F32":null,"F32":null}'))),
        ("dtype_map_repeated_key_in_list", "the same, in an entry written as a list",
         st('{"x":[{"F32":null,"F32":null},[2],[0,8]]}')),
        ("metadata_repeated_key_first_not_string", "a key twice in __metadata__, its first value 1",
         st('{"__metadata__":{"a":1,"a":"b"},' + X + "}")),
        ("metadata_repeated_key_first_object", "a key twice in __metadata__, its first value an object",
         st('{"__metadata__":{"a":{},"a":"b"},' + X + "}")),
        ("number_near_max_double_refused_by_serde", "1.7976931348623158e308 in an unknown field",
         obj(entry(extra=',"u":1.7976931348623158e308'))),
        ("number_near_max_double_read_by_serde", "179769313486231581e291 in an unknown field",
         obj(entry(extra=',"u":179769313486231581e291'))),
        ("number_1e308", "1e308 in an unknown field: read by both", obj(entry(extra=',"u":1e308'))),
    ]


def entry_cases():
    """Each tensor entry: its fields, dtype and shape."""
    return [
        # Entries.
        ("missing_dtype", "an entry without dtype", st('{"x":{"shape":[2],"data_offsets":[0,8]}}')),
        ("missing_shape", "an entry without shape", st('{"x":{"dtype":"F32","data_offsets":[0,8]}}')),
        ("missing_data_offsets", "an entry without data_offsets", st('{"x":{"dtype":"F32","shape":[2]}}')),
        ("field_name_case", "Dtype for dtype", st('{"x":{"Dtype":"F32","shape":[2],"data_offsets":[0,8]}}')),
        ("unknown_field", "an unknown field in an entry, ignored", obj(entry(extra=',"extra":{"a":[1,null,"s"]}'))),
        ("unknown_field_huge_number", "an unknown field holding a 30-digit integer",
         obj(entry(extra=',"e":123456789012345678901234567890'))),
        ("unknown_field_out_of_range", "an unknown field holding 1e400", obj(entry(extra=',"e":1e400'))),
        ("entry_list", "an entry written as the list [dtype, shape, data_offsets]", st('{"x":["F32",[2],[0,8]]}')),
        ("entry_list_dtype_map", "an entry as a list whose dtype is {\"F32\":null}",
         st('{"x":[{"F32":null},[2],[0,8]]}')),
        ("entry_list_of_2", "an entry as a list of 2", st('{"x":["F32",[2]]}')),
        ("entry_list_of_4", "an entry as a list of 4", st('{"x":["F32",[2],[0,8],1]}')),
        ("entry_string", "an entry that is a string", st('{"x":"F32"}')),
        ("entry_null", "an entry that is null", st('{"x":null}')),
        ("tensor_named_metadata_space", "a tensor named \"__metadata__ \" (a trailing space)",
         obj(entry(name="__metadata__ "))),
        ("tensor_named_empty", "a tensor named \"\"", obj(entry(name=""))),
        # dtype.
        ("dtype_unknown", "dtype F128", obj(entry(dtype='"F128"'))),
        ("dtype_lowercase", "dtype f32", obj(entry(dtype='"f32"'))),
        ("dtype_trailing_space", "dtype \"F32 \"", obj(entry(dtype='"F32 "'))),
        ("dtype_map_null", "dtype written as {\"F32\":null}, serde's form of an enum variant",
         obj(entry(dtype='{"F32":null}'))),
        ("dtype_map_one", "dtype written as {\"F32\":1}", obj(entry(dtype='{"F32":1}'))),
        ("dtype_map_two_keys", "dtype written as {\"F32\":null,\"F16\":null}",
         obj(entry(dtype='{"F32":null,"F16":null}'))),
        ("dtype_integer", "dtype 0", obj(entry(dtype="0"))),
        ("dtype_null", "dtype null", obj(entry(dtype="null"))),
        ("dtype_escaped", "dtype written \"F\\u0033\\u0032\"", obj(entry(dtype='"F\\u0033\\u0032"'))),
        ("field_name_escaped", "the field name written \"dty\\u0070e\"",
         st('{"x":{"dty\\u0070e":"F32","shape":[2],"data_offsets":[0,8]}}')),
        # shape.
        ("shape_float", "shape [2.0]", obj(entry(shape="[2.0]"))),
        ("shape_exponent", "shape [2e0]", obj(entry(shape="[2e0]"))),
        ("shape_minus_zero", "shape [-0]", obj(entry(shape="[-0]"))),
        ("shape_minus_one", "shape [-1]", obj(entry(shape="[-1]"))),
        ("shape_leading_zero", "shape [02]", obj(entry(shape="[02]"))),
        ("shape_2_64", "shape [2^64], past u64", obj(entry(shape="[18446744073709551616]"))),
        ("shape_string", "shape [\"2\"]", obj(entry(shape='["2"]'))),
        ("shape_not_list", "shape 2", obj(entry(shape="2"))),
        ("shape_with_spaces", "shape [ 2 ] with spaces inside", obj(entry(shape="[ 2 ]"))),
        ("shape_overflow", "shape [2^64-1, 2, 0]: the product overflows before it reaches the 0",
         obj(entry(shape="[18446744073709551615,2,0]", offsets="[0,0]"), data=b"")),
        ("shape_overflow_2_32", "shape [2^32, 2^32, 0]",
         obj(entry(shape="[4294967296,4294967296,0]", offsets="[0,0]"), data=b"")),
        ("shape_bytes_overflow", "shape [2^62] F32: elements fit, bytes do not",
         obj(entry(shape="[4611686018427387904]"))),
        ("shape_dim_2_63", "shape [0, 2^63]: no elements, but a dimension past int64",
         obj(entry(shape="[0,9223372036854775808]", offsets="[0,0]"), data=b"")),
        ("shape_dim_2_63_minus_1", "shape [0, 2^63-1]: no elements, every dimension an int64",
         obj(entry(shape="[0,9223372036854775807]", offsets="[0,0]"), data=b"")),
        ("shape_size_mismatch", "shape [3] F32 in 8 bytes", obj(entry(shape="[3]"))),
        ("scalar", "shape [] I32: a 0-dim tensor of 4 bytes",
         obj(entry(dtype='"I32"', shape="[]", offsets="[0,4]"), data=b"\7\0\0\0")),
        ("scalar_without_data", "shape [] F32 with no bytes", obj(entry(shape="[]", offsets="[0,0]"), data=b"")),
    ]


def offset_cases():
    """data_offsets: where each tensor lies."""
    return [
        # data_offsets.
        ("offsets_overlap", "a [0,8] and b [4,12]", obj(entry("a"), entry("b", offsets="[4,12]"), data=f32(1, 2, 3))),
        ("offsets_same_range", "a and b both [0,8]", obj(entry("a"), entry("b"))),
        ("offsets_gap", "a [0,8] and b [12,20]: 4 bytes belong to nothing",
         obj(entry("a"), entry("b", offsets="[12,20]"), data=f32(1, 2, 0, 3, 4))),
        ("offsets_gap_at_start", "a [4,12]: the first 4 bytes belong to nothing",
         obj(entry(offsets="[4,12]"), data=f32(0, 1, 2))),
        ("offsets_past_end", "a [0,8] in a file with 4 bytes of data", obj(X, data=f32(1))),
        ("offsets_begin_after_end", "data_offsets [8,0]", obj(entry(offsets="[8,0]"))),
        ("offsets_begin_after_end_second", "a [0,8], b [8,4]", obj(entry("a"), entry("b", offsets="[8,4]"))),
        ("offsets_u64_max", "data_offsets [0, 2^64-1]", obj(entry(offsets="[0,18446744073709551615]"))),
        ("offsets_float", "data_offsets [0,8.0]", obj(entry(offsets="[0,8.0]"))),
        ("offsets_three", "data_offsets [0,8,8]", obj(entry(offsets="[0,8,8]"))),
        ("offsets_one", "data_offsets [0]", obj(entry(offsets="[0]"))),
        ("trailing_bytes", "4 bytes after the last tensor", obj(X, data=D8 + b"\0" * 4)),
        ("trailing_bytes_no_tensors", "header {} then 4 bytes", st("{}", b"\0" * 4)),
        ("out_of_order_entries", "b [8,16] written before a [0,8]",
         obj(entry("b", offsets="[8,16]"), entry("a"), data=f32(1, 2, 3, 4))),
        ("names_against_offsets", "z at [0,8], a at [8,16]",
         obj(entry("z"), entry("a", offsets="[8,16]"), data=f32(1, 2, 3, 4))),
        ("two_empty_at_zero", "two empty tensors, both at [0,0]",
         obj(entry("a", shape="[0]", offsets="[0,0]"), entry("b", shape="[0,3]", offsets="[0,0]"), data=b"")),
        ("empty_after_data", "an empty tensor at [8,8] after an 8-byte tensor",
         obj(entry("a"), entry("e", shape="[0]", offsets="[8,8]"))),
        ("unaligned_data", "a header of 53 bytes: the data starts off any 8-byte boundary",
         st('{"x":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}}', struct.pack("<d", 1.25))),
        ("nan_payloads", "F32 data FF FF FF FF, 01 00 80 7F: NaNs whose bits must survive",
         obj(X, data=b"\xff\xff\xff\xff\x01\x00\x80\x7f")),
        ("bool_not_0_or_1", "BOOL bytes 02 FF 00 01, kept as they are",
         obj(entry(dtype='"BOOL"', shape="[4]", offsets="[0,4]"), data=b"\x02\xff\x00\x01")),
    ]


def metadata_cases():
    """__metadata__, UTF-8 and strings."""
    return [
        # __metadata__.
        ("metadata_null", "__metadata__ null: as if absent", st('{"__metadata__":null,' + X + "}")),
        ("metadata_empty", "__metadata__ {}", st('{"__metadata__":{},' + X + "}")),
        ("metadata_only", "__metadata__ and no tensors", st('{"__metadata__":{"a":"b"}}', b"")),
        ("metadata_after_tensors", "__metadata__ after the entries", st("{" + X + ',"__metadata__":{"k":"v"}}')),
        ("metadata_non_string", "a metadata value that is a number", st('{"__metadata__":{"a":1},' + X + "}")),
        ("metadata_value_null", "a metadata value that is null", st('{"__metadata__":{"a":null},' + X + "}")),
        ("metadata_value_object", "a metadata value that is an object", obj('"__metadata__":{"a":{"b":"c"}}', X)),
        ("metadata_list", "__metadata__ a list", st('{"__metadata__":["a"],' + X + "}")),
        ("metadata_string", "__metadata__ a string", st('{"__metadata__":"s",' + X + "}")),
        ("metadata_key_escaped", "the key written \"__metadata\\u005f_\" is __metadata__",
         st('{"__metadata\\u005f_":{"a":"b"},' + X + "}")),
        # UTF-8 and strings.
        ("utf8_raw_ff", "a raw FF byte in a name", st(b'{"a\xff' + X.encode()[2:] + b"}")),
        ("utf8_overlong", "an overlong encoding of '/' (C0 AF) in a name", st(b'{"a\xc0\xaf' + X.encode()[2:] + b"}")),
        ("utf8_surrogate", "an encoded surrogate (ED A0 80) in a name", st(b'{"a\xed\xa0\x80' + X.encode()[2:] + b"}")),
        ("utf8_truncated", "a name ending inside a 3-byte sequence (E2 82)",
         st(b'{"a\xe2\x82' + X.encode()[2:] + b"}")),
        ("utf8_in_padding", "a raw FF byte after '}'", st(("{" + X + "}").encode() + b"\xff")),
        ("utf8_in_metadata", "a raw FF byte in a metadata value",
         st(b'{"__metadata__":{"a":"\xff"},' + X.encode() + b"}")),
        ("utf8_bom", "a UTF-8 byte order mark before '{'", st(b"\xef\xbb\xbf{" + X.encode() + b"}")),
        ("utf8_raw_non_ascii", "raw UTF-8 in a name (e with acute, an emoji)", obj(entry("é😀"))),
        ("lone_surrogate_escape", "a name with the lone escape \\ud800", obj(entry("a\\ud800"))),
        ("lone_low_surrogate_escape", "a name with the lone escape \\udc00", obj(entry("a\\udc00"))),
        ("surrogate_then_non_surrogate", "a name with \\ud800\\u0041", obj(entry("a\\ud800\\u0041"))),
        ("surrogate_pair_escape", "a name with the pair \\ud83d\\ude00, an emoji", obj(entry("a\\ud83d\\ude00"))),
        ("lone_surrogate_in_metadata", "a metadata value with \\ud800", obj('"__metadata__":{"a":"\\ud800"}', X)),
        ("lone_surrogate_in_unknown_field", "an unknown field's string with \\ud800",
         obj(entry(extra=',"u":"\\ud800"'))),
        ("control_char_raw", "a raw 0x01 in a name", obj(entry("a\x01b"))),
        ("tab_raw", "a raw tab in a name", obj(entry("a\tb"))),
        ("del_raw", "a raw DEL (0x7F) in a name, which JSON allows", obj(entry("a\x7fb"))),
        ("nul_escaped", "a name with \\u0000", obj(entry("a\\u0000b"))),
        ("escape_solidus", "a name with \\/", obj(entry("a\\/b"))),
        ("escape_invalid", "a name with \\x41", obj(entry("a\\x41"))),
    ]

def single_cases():
    """(name, why, bytes) for every single-file case."""
    for cases in (header_length_cases, json_cases, entry_cases, offset_cases, metadata_cases):
        yield from cases()
    # dtypes: those this PyTorch may lack (refused by 1.13) and the sub-byte ones.
    for dtype, shape, size in (("U16", 2, 4), ("U32", 2, 8), ("U64", 2, 16), ("F8_E5M2", 2, 2), ("F8_E4M3", 2, 2),
                               ("F8_E8M0", 2, 2), ("F8_E4M3FNUZ", 2, 2), ("F8_E5M2FNUZ", 2, 2), ("F4", 2, 1),
                               ("F6_E2M3", 4, 3), ("F6_E3M2", 4, 3)):
        yield ("dtype_" + dtype.lower(), f"dtype {dtype}, shape [{shape}]",
               obj(entry(dtype='"%s"' % dtype, shape="[%d]" % shape, offsets="[0,%d]" % size),
                   data=bytes(range(1, size + 1))))
    yield ("dtype_u16_empty", "dtype U16, shape [0]", obj(entry(dtype='"U16"', shape="[0]", offsets="[0,0]"), data=b""))
    for name, shape in (("strides_2_31_2_32_0", "[2147483648,4294967296,0]"), ("strides_2_62_2_0", "[4611686018427387904,2,0]"),
                        ("strides_0_5_2_60_2", "[0,5764607523034234880,2]")):
        yield (name, "an empty F32 tensor of shape %s: strides past an int64" % shape,
               obj(entry(shape=shape, offsets="[0,0]"), data=b""))
    yield ("dtype_f4_odd", "dtype F4, shape [1]: half a byte",
           obj(entry(dtype='"F4"', shape="[1]", offsets="[0,1]"), data=b"\1"))
    yield ("dtype_u16_after_f32", "an F32 tensor, then a U16 one",
           obj(entry("a"), entry("b", dtype='"U16"', offsets="[8,12]"), data=D8 + b"\1\0\2\0"))
    yield ("every_dtype_torch_1_13_has", "one tensor of each dtype PyTorch 1.13 reads, odd bit patterns",
           valid(*[("t_" + d, d, [2], bytes(range(0x7c, 0x7c + 2 * n))) for d, n in
                   (("F64", 8), ("F32", 4), ("F16", 2), ("BF16", 2), ("I64", 8), ("I32", 4), ("I16", 2), ("I8", 1),
                    ("U8", 1), ("C64", 8))], ("t_BOOL", "BOOL", [2], b"\0\1")))


def index_cases(out):
    """(name, why, folder of the index within the case, {weight_map}, {path within the case: bytes}, index
    text or None for the usual one) for every sharded case."""
    a = ("a", "F32", [2], f32(1, 2))
    b = ("b", "I64", [1], struct.pack("<q", 7))
    c = ("c", "F16", [2], struct.pack("<2e", 0.5, -0.5))
    s1, s2 = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
    two = {s1: valid(a, b, metadata={"format": "pt"}), s2: valid(c, metadata={"format": "pt"})}
    yield ("index_ok", "two shards that hold exactly what weight_map says", "",
           {"a": s1, "b": s1, "c": s2}, two, None)
    yield ("index_missing_shard", "weight_map names a shard that is not there", "",
           {"a": s1, "b": s1, "c": s2}, {s1: two[s1]}, None)
    yield ("index_shard_in_parent", "a shard named \"../x.safetensors\" (which exists)", "inner",
           {"a": "../x.safetensors"}, {"x.safetensors": valid(a)}, None)
    yield ("index_shard_absolute", "a shard named by its absolute path (which exists, in the index's folder)", "",
           {"a": os.path.abspath(os.path.join(out, "index_shard_absolute", "x.safetensors"))},
           {"x.safetensors": valid(a)}, None)
    yield ("index_shard_in_subfolder", "a shard named \"sub/x.safetensors\" (which exists)", "",
           {"a": "sub/x.safetensors"}, {"sub/x.safetensors": valid(a)}, None)
    yield ("index_tensor_in_two_shards", "b is in both shards; weight_map puts it in the first", "",
           {"a": s1, "b": s1, "c": s2}, {s1: two[s1], s2: valid(b, c)}, None)
    yield ("index_wrong_shard", "weight_map puts a in the second shard and c in the first, against the files", "",
           {"a": s2, "b": s1, "c": s1}, two, None)
    yield ("index_tensor_not_in_weight_map", "the second shard also holds d, which weight_map does not name", "",
           {"a": s1, "b": s1, "c": s2}, {s1: two[s1], s2: valid(c, ("d", "U8", [1], b"\1"))}, None)
    yield ("index_name_in_no_shard", "weight_map names e, which no shard holds", "",
           {"a": s1, "b": s1, "c": s2, "e": s2}, two, None)
    yield ("index_bad_shard", "a shard with 4 bytes after its last tensor", "",
           {"a": s1, "b": s1, "c": s2}, {s1: two[s1], s2: two[s2] + b"\0" * 4}, None)
    yield ("index_not_json", "an index that is not JSON", "", {}, two, "not json")
    usual = json.dumps({"weight_map": {"a": s1, "b": s1, "c": s2}})
    yield ("index_nul_then_garbage", "a NUL after the index's object, then bytes that are not UTF-8", "", {}, two,
           usual + "\0\xff garbage")
    yield ("index_deep_metadata", "metadata nested 100,000 deep", "", {}, two,
           '{"metadata":' + "[" * 100000 + "]" * 100000 + ',"weight_map":' + json.dumps({"a": s1, "b": s1, "c": s2}) + "}")
    yield ("index_one_shard_under_two_names", "one file under two shard names, a in one and b in the other", "",
           {"a": s1, "b": "again.safetensors", "c": s2}, {**two, "again.safetensors": two[s1]}, None)
    yield ("index_without_weight_map", "an index with no weight_map", "", {}, two, '{"metadata":{"total_size":30}}')


def python_verdict(path):
    """("loaded" | "refused" | None, the exception or None): what this Python makes of the file."""
    try:
        import torch  # noqa: F401
        import safetensors  # noqa: F401
        import agree_with_python
    except ImportError:
        return None, None
    try:
        agree_with_python.python_safetensors(path)
    except Exception as e:  # noqa: BLE001 - any refusal is the verdict
        return "refused", f"{type(e).__name__}: {e}"
    return "loaded", None


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    import warnings
    warnings.filterwarnings("ignore")
    cases = {}
    for name, why, data in single_cases():
        path = name + ".safetensors"
        with open(os.path.join(out, path), "wb") as f:
            f.write(data)
        cases[path] = why
    for name, why, inner, weight_map, files, text in index_cases(out):
        for relative, data in files.items():
            os.makedirs(os.path.dirname(os.path.join(out, name, relative)), exist_ok=True)
            with open(os.path.join(out, name, relative), "wb") as f:
                f.write(data)
        if text is None:  # as transformers writes it: total_size is the bytes of the tensors' data
            total = sum(len(d) - 8 - struct.unpack("<Q", d[:8])[0] for d in files.values())
            index = {"metadata": {"total_size": total}, "weight_map": weight_map}
            text = json.dumps(index, indent=2, sort_keys=True) + "\n"
        path = "/".join(p for p in (name, inner, "model.safetensors.index.json") if p)
        os.makedirs(os.path.dirname(os.path.join(out, path)), exist_ok=True)
        with open(os.path.join(out, path), "w") as f:
            f.write(text)
        cases[path] = why
    table = {}
    for path, why in cases.items():
        verdict, error = python_verdict(os.path.join(out, path))
        table[path] = {"python": verdict, "why": why, "error": error}
    with open(os.path.join(out, "cases.json"), "w") as f:
        json.dump(table, f, indent=1, sort_keys=True, ensure_ascii=False)


if __name__ == "__main__":
    main()
