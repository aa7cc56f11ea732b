// The safetensors dtypes, as the reference crate declares them, and LibTorch's type for each where this
// LibTorch has one.
#include <array>

#include <torch/version.h>

#include "common/safetensors/internal.h"

namespace common::safetensors {
namespace {

#define MP_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

// A LibTorch type that came with a later PyTorch: nothing where this LibTorch predates it.
#if MP_TORCH_AT_LEAST(2, 1)
#define MP_SINCE_2_1(type) c10::ScalarType::type
#else
#define MP_SINCE_2_1(type) std::nullopt
#endif
#if MP_TORCH_AT_LEAST(2, 2)
#define MP_SINCE_2_2(type) c10::ScalarType::type
#else
#define MP_SINCE_2_2(type) std::nullopt
#endif
#if MP_TORCH_AT_LEAST(2, 3)
#define MP_SINCE_2_3(type) c10::ScalarType::type
#else
#define MP_SINCE_2_3(type) std::nullopt
#endif
#if MP_TORCH_AT_LEAST(2, 7)
#define MP_SINCE_2_7(type) c10::ScalarType::type
#else
#define MP_SINCE_2_7(type) std::nullopt
#endif

// The reference's Dtype, in its declaration order (which its writer sorts by), with the LibTorch type
// where this LibTorch has one.
constexpr std::array<DtypeName, 22> kDtypes{{
    {"BOOL", 8, c10::ScalarType::Bool},
    {"F4", 4, std::nullopt},
    {"F6_E2M3", 6, std::nullopt},
    {"F6_E3M2", 6, std::nullopt},
    {"U8", 8, c10::ScalarType::Byte},
    {"I8", 8, c10::ScalarType::Char},
    {"F8_E5M2", 8, MP_SINCE_2_1(Float8_e5m2)},
    {"F8_E4M3", 8, MP_SINCE_2_1(Float8_e4m3fn)},
    {"F8_E8M0", 8, MP_SINCE_2_7(Float8_e8m0fnu)},
    {"F8_E4M3FNUZ", 8, MP_SINCE_2_2(Float8_e4m3fnuz)},
    {"F8_E5M2FNUZ", 8, MP_SINCE_2_2(Float8_e5m2fnuz)},
    {"I16", 16, c10::ScalarType::Short},
    {"U16", 16, MP_SINCE_2_3(UInt16)},
    {"F16", 16, c10::ScalarType::Half},
    {"BF16", 16, c10::ScalarType::BFloat16},
    {"I32", 32, c10::ScalarType::Int},
    {"U32", 32, MP_SINCE_2_3(UInt32)},
    {"F32", 32, c10::ScalarType::Float},
    {"C64", 64, c10::ScalarType::ComplexFloat},
    {"F64", 64, c10::ScalarType::Double},
    {"I64", 64, c10::ScalarType::Long},
    {"U64", 64, MP_SINCE_2_3(UInt64)},
}};

}  // namespace

const DtypeName* dtype_named(std::string_view name) {
  for (const auto& d : kDtypes)
    if (name == d.name) return &d;
  return nullptr;
}

const DtypeName* dtype_of(c10::ScalarType type) {
  for (const auto& d : kDtypes)
    if (d.type == type) return &d;
  return nullptr;
}

size_t dtype_rank(const DtypeName* d) { return static_cast<size_t>(d - kDtypes.data()); }

}  // namespace common::safetensors
