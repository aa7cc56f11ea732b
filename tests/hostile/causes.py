"""Hostile files by cause: for each way a weights reader can go wrong, several files that show it, each
built another way, so that a fix of the cause and not of one example is what makes them pass.

Every file here is refused by the reader with one error line naming it. `load_cases` are given to
`09_file_io --load` (the state-dict path), `resume_cases` are planted as the newest checkpoint of
`11_checkpoints --resume` (the any-value path), which must skip them with a warning naming them.
"""
import os
import struct

from craft import (PROTO, get, mlp_records, module_object, pdict, put, s, shared_levels, sparse_record_zip,
                   sparse_zip_claiming, torch_save_zip, torch_save_zip_with_names, torchscript,
                   torchscript_like, two_end_records, with_classic_end, with_entry_field, with_zip64,
                   with_zip64_locator_offset, zip64_extra_field_past_its_end)
from make_hostile import archive, glob, integer, tensor


def cases_1(out, case, resume_case):
    good = tensor()
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


def cases_2(out, case, resume_case):
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


def cases_3(out, case, resume_case):
    one = {"data/0": b"\0" * 4}
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


def cases_4(out, case, resume_case):
    one = {"data/0": b"\0" * 4}
    # 4. The machine's own memory: each value costs what it is, drawn from one budget.
    case("a_million_nones", "holds a list, not a dict", PROTO + b"](" + b"N" * 1000000 + b"e.")
    case("a_million_empty_tuples", "holds a list, not a dict", PROTO + b"](" + b")" * 1000000 + b"e.")
    dims = tensor(numel=1, size=(1,) * 64, stride=(1,) * 64)
    case("tensors_of_64_dimensions", "budget of 64 MiB",
         PROTO + b"](" + dims * (5000000 // len(dims)) + b"e.", records=one)
    case("strings_beyond_the_budget", "budget",
         PROTO + b"](" + (b"X" + struct.pack("<I", 1 << 20) + b"x" * (1 << 20)) * 60 + b"e.")
    resume_case("a_million_nones", PROTO + b"](" + b"N" * 1000000 + b"e.")


def cases_5(out, case, resume_case):
    def path(name):
        return os.path.join(out, name + ".pt")

    # 5. The central directory is as large as its end record says only if the file holds it.
    sparse = [("directory_claims_3gib", 3, False), ("directory_claims_40gib_zip64", 40, True)]
    for name, gigabytes, zip64 in sparse:
        try:
            sparse_zip_claiming(path(name), gigabytes, zip64)
        except OSError:
            continue  # a filesystem without sparse files: the case is left out
        case(name, "zip64 directory larger than PyTorch reads" if zip64 else "directory is damaged", None)


def cases_6(out, case, resume_case):
    one = {"data/0": b"\0" * 4}
    # 6. Errors from LibTorch or the allocator name the file too.
    case("int_tensor_requiring_grad", "only floating-point tensors can require gradients",
         PROTO + pdict((s("w"), tensor(dtype="LongStorage", numel=2, size=(2,)).replace(b"\x89", b"\x88", 1)))
         + b".")
    case("numel_past_int64", "more elements than",
         PROTO + pdict((s("w"), tensor(numel=1, size=(1 << 40, 1 << 40), stride=(0, 0)))) + b".", records=one)


def cases_7(out, case, resume_case):
    one = {"data/0": b"\0" * 4}
    # 7. Arithmetic on values from the file, checked.
    case("empty_tensor_with_huge_sizes", "does not fit the model",
         PROTO + pdict((s("w"), tensor(numel=1, size=(0, 1 << 62, 4), stride=(1, 1, 1)))) + b".", records=one)


def cases_8(out, case, resume_case):
    def path(name):
        return os.path.join(out, name + ".pt")

    good = tensor()
    one = {"data/0": b"\0" * 4}
    mlp_entries, mlp_recs = mlp_records()
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


def cases_9(out, case, resume_case):
    def path(name):
        return os.path.join(out, name + ".pt")

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


def cases_10(out, case, resume_case):
    good = tensor()
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


def cases_11(out, case, resume_case):
    one = {"data/0": b"\0" * 4}
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


def cases_12(out, case, resume_case):
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


def cases_13(out, case, resume_case):
    def path(name):
        return os.path.join(out, name + ".pt")

    one = {"data/0": b"\0" * 4}
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


def cases_14(out, case, resume_case):
    good = tensor()
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


def cases_7b(out, case, resume_case):
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


def main(out, case, resume_case):
    for cases in (cases_1, cases_2, cases_3, cases_4, cases_5, cases_6, cases_7, cases_8, cases_9, cases_10, cases_11, cases_12, cases_13, cases_14, cases_7b):
        cases(out, case, resume_case)
