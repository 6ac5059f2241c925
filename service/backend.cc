#include "service/backend.h"


namespace pinring::ringd {

void Backend::ExecuteBatch(absl::Span<const ValidatedOp> ops, absl::Span<OpResult> out) {
  for (std::size_t i = 0; i < ops.size(); ++i) {
    if (ops[i].status == CompletionStatus::kOk) out[i] = Execute(ops[i]);
  }
}

}  // namespace pinring::ringd
