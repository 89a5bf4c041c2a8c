// Runs a compiled chunk's AOTInductor package with Python's interpreter lock released (stored.py
// calls these functions through ctypes, which releases it around each call).
//
// A chunk whose graph all-gathers over gloo (a partitioned network's exchange between machines)
// waits inside the package for gloo's worker thread. That thread lets go of each finished
// all-gather's tensors, and where one of them is a view of a tensor that Python holds, letting go
// takes the interpreter lock: torch's own loader keeps the lock for the whole run, so both would
// wait for each other forever.
//
// sapicore_package_open(path) -> loader (or null; sapicore_package_error says why)
// sapicore_package_run(loader, inputs, count, outputs, most) -> number of outputs (or -1)
//   inputs   `count` tensor handles (new at::Tensor objects, as torch._C._aoti's
//            unsafe_alloc_void_ptrs_from_tensors makes them), which the call deletes
//   outputs  room for `most` handles: new at::Tensor objects, for Python to take over
// sapicore_package_close(loader)
#include <torch/extension.h>

#if __has_include(<torch/csrc/inductor/aoti_package/model_package_loader.h>)  // torch 2.6 and later
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>

#include <string>
#include <vector>

namespace {
thread_local std::string last_error;
}  // namespace

extern "C" {

void* sapicore_package_open(const char* path) {
  try {
    return new torch::inductor::AOTIModelPackageLoader(path, "model");
  } catch (const std::exception& err) {
    last_error = err.what();
    return nullptr;
  }
}

int64_t sapicore_package_run(void* loader, void** inputs, int64_t count, void** outputs, int64_t most) {
  std::vector<at::Tensor> given;
  given.reserve(count);
  for (int64_t i = 0; i < count; ++i) {  // every handle taken over before anything can fail
    auto* handle = static_cast<at::Tensor*>(inputs[i]);
    given.push_back(std::move(*handle));
    delete handle;
  }
  try {
    auto out = static_cast<torch::inductor::AOTIModelPackageLoader*>(loader)->run(given);
    TORCH_CHECK(static_cast<int64_t>(out.size()) <= most, "the package returned ", out.size(),
                " tensors, more than the ", most, " expected");
    for (size_t i = 0; i < out.size(); ++i) outputs[i] = new at::Tensor(std::move(out[i]));
    return static_cast<int64_t>(out.size());
  } catch (const std::exception& err) {
    last_error = err.what();
    return -1;
  }
}

const char* sapicore_package_error() { return last_error.c_str(); }

void sapicore_package_close(void* loader) { delete static_cast<torch::inductor::AOTIModelPackageLoader*>(loader); }

}  // extern "C"
#endif
