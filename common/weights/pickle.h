#pragma once
// The pickle opcodes torch.save and LibTorch's pickler write, and the only ones the reader's machine
// runs. They keep Python's names rather than the suite's kPascalCase, so that each can be looked up in
// Lib/pickletools.py, where it is documented.
#include <cstddef>

namespace common::weights::pickle {

enum class Op : unsigned char {
  // Protocol 0 and 1
  MARK = '(',
  STOP = '.',
  NONE = 'N',
  BININT = 'J',
  BININT1 = 'K',
  BININT2 = 'M',
  BINFLOAT = 'G',
  BINUNICODE = 'X',
  EMPTY_TUPLE = ')',
  TUPLE = 't',
  EMPTY_LIST = ']',
  APPEND = 'a',
  APPENDS = 'e',
  EMPTY_DICT = '}',
  SETITEM = 's',
  SETITEMS = 'u',
  BINGET = 'h',
  LONG_BINGET = 'j',
  BINPUT = 'q',
  LONG_BINPUT = 'r',
  GLOBAL = 'c',
  REDUCE = 'R',
  BUILD = 'b',
  BINPERSID = 'Q',
  // Protocol 2
  PROTO = 0x80,
  NEWOBJ = 0x81,
  TUPLE1 = 0x85,
  TUPLE2 = 0x86,
  TUPLE3 = 0x87,
  NEWTRUE = 0x88,
  NEWFALSE = 0x89,
  LONG1 = 0x8a,
};

// The opcode that makes a tuple of the n (1 to 3) items on top of the stack.
constexpr Op small_tuple(size_t n) { return static_cast<Op>(static_cast<unsigned char>(Op::TUPLE1) + n - 1); }

}  // namespace common::weights::pickle
