// Linked instead of cuda/ when llmkit is built without CUDA.
#include "core/backend.hpp"

namespace llmkit::core {
device_backend *cuda_backend() { return nullptr; }
}  // namespace llmkit::core
