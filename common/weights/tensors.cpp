// A weights file's tensors, as Python rebuilds them: each storage read once, through its CRC, and each
// tensor a view of it; or, for loading into a module, the bytes read straight into its parameters.
#include <algorithm>
#include <cstring>
#include <unordered_set>

#include <fmt/format.h>

#include "common/lesson/print.h"
#include "common/weights/internal.h"

namespace common::weights {

void WeightsFile::verify(const std::vector<const TensorRef*>& refs) const {
  std::unordered_set<size_t> done;
  std::vector<Range> ranges;
  std::vector<const Record*> checked;
  for (const auto* ref : refs) {
    if (!done.insert(ref->record).second || !(*storages_)[ref->record].empty()) continue;
    const auto& r = records_.at(ref->record);
    ranges.push_back({r.offset, r.size, nullptr});
    checked.push_back(&r);
  }
  const auto crcs = read_ranges(*source_, ranges, /*crc=*/true);
  for (size_t i = 0; i < checked.size(); ++i) check_crc(*checked[i], crcs[i], failing());
}

void WeightsFile::stream(const Record& r,
                         const std::function<void(uint64_t at, const char* bytes, size_t n)>& visit) const {
  std::vector<char> slice(1 << 20);
  uint32_t crc = 0;
  for (uint64_t at = 0; at < r.size; at += slice.size()) {
    const auto n = static_cast<size_t>(std::min<uint64_t>(slice.size(), r.size - at));
    source_->read(r.offset + at, slice.data(), n);
    crc = crc32(crc, slice.data(), n);
    if (visit) visit(at, slice.data(), n);
  }
  check_crc(r, crc, failing());
}

void WeightsFile::read_into(const std::vector<std::pair<const TensorRef*, torch::Tensor>>& targets) const {
  // Contiguous CPU targets are read into directly, all at once; the others through their storage.
  std::vector<Range> direct;
  for (const auto& [ref, target] : targets) {
    const auto& r = records_.at(ref->record);
    const auto element = static_cast<uint64_t>(c10::elementSize(ref->dtype));
    if (target.device().is_cpu() && target.is_contiguous() && target.scalar_type() == ref->dtype &&
        ref->contiguous() && target.numel() == ref->numel() && (*storages_)[ref->record].empty()) {
      direct.push_back({r.offset + static_cast<uint64_t>(ref->storage_offset) * element,
                        static_cast<uint64_t>(ref->numel()) * element,
                        static_cast<char*>(target.data_ptr())});
    } else {
      auto into = target;
      into.copy_(tensor(*ref));
    }
  }
  read_ranges(*source_, direct, /*crc=*/false);
}

namespace {

// The elements [first, last) of a storage that a tensor reaches; empty for a tensor of no elements.
std::pair<int64_t, int64_t> reach(const TensorRef& ref) {
  if (ref.numel() == 0) return {ref.storage_offset, ref.storage_offset};
  int64_t last = ref.storage_offset;
  for (size_t d = 0; d < ref.sizes.size(); ++d) last += (ref.sizes[d] - 1) * ref.strides[d];
  return {ref.storage_offset, last + 1};
}

}  // namespace

const std::vector<WeightsFile::Reached>& WeightsFile::reached() const {
  if (reached_) return *reached_;
  // Every tensor the root holds, however deep: the ones that may be made from the file.
  std::vector<std::vector<std::pair<int64_t, int64_t>>> spans(records_.size());
  std::vector<Reached> out(records_.size());
  std::unordered_set<const Value*> seen;
  std::vector<const Value*> todo{root_.get()};
  while (!todo.empty()) {
    const Value* v = todo.back();
    todo.pop_back();
    if (!seen.insert(v).second) continue;
    if (v->kind == Value::Kind::kTensor) {
      const auto [first, last] = reach(*v->tensor);
      if (first < last) spans[v->tensor->record].emplace_back(first, last);
      // A strided view reaches more elements than it holds; a stride-0 one holds more than it reaches.
      out[v->tensor->record].used += std::min(v->tensor->numel(), last - first);
    }
    for (const auto& item : v->items) todo.push_back(item.get());
    for (const auto& [key, value] : v->entries) {
      todo.push_back(key.get());
      todo.push_back(value.get());
    }
  }
  for (size_t r = 0; r < spans.size(); ++r) {
    auto& parts = spans[r];
    std::sort(parts.begin(), parts.end());
    auto& merged = out[r].parts;
    for (const auto& span : parts) {
      if (!merged.empty() && span.first <= merged.back().second) {
        merged.back().second = std::max(merged.back().second, span.second);
      } else {
        merged.push_back(span);
      }
    }
  }
  reached_ = std::make_shared<std::vector<Reached>>(std::move(out));
  return *reached_;
}

void WeightsFile::read_storage(const TensorRef& ref) const {
  const auto& r = records_.at(ref.record);
  const auto element = static_cast<uint64_t>(c10::elementSize(ref.dtype));
  const auto& reached_parts = reached()[ref.record];
  uint64_t kept = 0;
  for (const auto& [first, last] : reached_parts.parts) kept += static_cast<uint64_t>(last - first) * element;
  // Python reads a storage whole however little of it its tensors view. So does this reader, unless more
  // than kUnreachedBytes of it is reached by no tensor: then the record is streamed once through its CRC,
  // and only the parts the tensors reach are kept, so that a small view of a huge record costs its view.
  // Views that reach far more than they hold (large strides) would cost what they reach: refused.
  const uint64_t used = static_cast<uint64_t>(reached_parts.used) * element;
  if (kept > used + kUnreachedBytes)
    fail(fmt::format(
        "its tensors hold {} bytes of storage {} but reach across {} bytes of it, all of which would have to "
        "be in memory; this reader refuses such a file (in Python, save each tensor's .clone())",
        used, printable(r.name), kept));
  std::vector<std::pair<int64_t, int64_t>> parts{{0, ref.storage_numel}};
  if (r.size - kept > kUnreachedBytes) {
    parts = reached_parts.parts;
    if (parts.empty()) parts = {{0, 0}};  // only tensors of no elements: nothing of it is kept
  }
  std::vector<Piece> out;
  out.reserve(parts.size());
  for (const auto& [first, last] : parts)
    out.push_back({first, torch::empty({last - first}, torch::TensorOptions().dtype(ref.dtype))});
  if (out.size() == 1 && out[0].first == 0 && out[0].data.nbytes() == r.size) {
    source_->read(r.offset, out[0].data.data_ptr(), static_cast<size_t>(r.size));
    check_crc(r, crc32(0, out[0].data.data_ptr(), static_cast<size_t>(r.size)), failing());
  } else {
    stream(r, [&](uint64_t at, const char* bytes, size_t n) {
      for (auto& piece : out) {
        const uint64_t begin = static_cast<uint64_t>(piece.first) * element;
        const uint64_t from = std::max(at, begin);
        const uint64_t to = std::min<uint64_t>(at + n, begin + piece.data.nbytes());
        if (from < to)
          std::memcpy(static_cast<char*>(piece.data.data_ptr()) + (from - begin), bytes + (from - at),
                      to - from);
      }
    });
  }
  (*storages_)[ref.record] = std::move(out);
}

const WeightsFile::Piece& WeightsFile::piece(const TensorRef& ref) const {
  try {
    if ((*storages_)[ref.record].empty()) read_storage(ref);
  } catch (const FileError&) {
    throw;
  } catch (const std::exception& e) {
    fail(fmt::format("cannot read storage {}: {}", printable(records_.at(ref.record).name), e.what()));
  }
  const auto& pieces = (*storages_)[ref.record];
  const auto [first, last] = reach(ref);
  for (const auto& p : pieces)
    if (p.first <= first && last <= p.first + p.data.numel()) return p;
  return pieces.front();  // a tensor of no elements, outside every part: any piece holds it
}

torch::Tensor WeightsFile::storage(const TensorRef& ref) const { return piece(ref).data; }

torch::Tensor WeightsFile::tensor(const TensorRef& ref) const {
  const auto& p = piece(ref);
  // Python's _rebuild_tensor: a tensor set on the storage, sharing it (not a copy, and not an autograd
  // view): a stride-0 tensor of any size costs its storage only. A tensor of no elements keeps its offset,
  // even past the storage's end, as Python's does; only one before a kept part of a huge storage (whose
  // offsets are relative to that part) starts at the part instead.
  int64_t offset = ref.storage_offset - p.first;
  if (ref.numel() == 0) offset = std::max<int64_t>(offset, 0);
  auto out = torch::empty({0}, p.data.options()).set_(p.data.storage(), offset, ref.sizes, ref.strides);
  if (ref.requires_grad) out.requires_grad_(true);
  return out;
}

}  // namespace common::weights
