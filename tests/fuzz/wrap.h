#pragma once
// How the pickle fuzzer and everything that replays its inputs turn a data.pkl into a whole file: a valid
// archive with storages data/0 of 16 bytes, data/1 of 64 and data/2 of none, and a version record, so that
// byte mutations reach the pickle machine instead of stopping at the zip's checks.
#include <string>
#include <string_view>

#include "common/weights/weights.h"

namespace fuzzing {

inline std::string wrap_pickle(std::string_view pickle) {
  return common::weights::make_archive("archive", {{"data.pkl", std::string(pickle)},
                                                   {"data/0", std::string(16, '\x01')},
                                                   {"data/1", std::string(64, '\x02')},
                                                   {"data/2", std::string()},
                                                   {"version", "3\n"}});
}

}  // namespace fuzzing
