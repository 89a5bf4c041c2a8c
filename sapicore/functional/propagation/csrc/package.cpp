// Runs a compiled chunk's AOTInductor package with Python's interpreter lock released: stored.py opens
// and closes a package through ctypes and runs it with the op sapicore::run_package (torch releases
// the lock around every op called from Python; torch's own loader keeps it for the whole run).
//
// A chunk whose graph all-gathers over gloo (a partitioned network's exchange between machines)
// waits inside the package for gloo's worker thread. That thread lets go of each finished
// all-gather's tensors, and where one of them is a view of a tensor that Python holds, letting go
// takes the interpreter lock: torch's own loader keeps the lock for the whole run, so both would
// wait for each other forever.
//
// sapicore_package_open(path) -> loader (or null; sapicore_package_error says why)
// torch.ops.sapicore.run_package(loader, inputs) -> outputs  (the loader as an integer address)
// sapicore_package_close(loader)
#include <torch/extension.h>

#if __has_include(<torch/csrc/inductor/aoti_package/model_package_loader.h>)  // torch 2.6 and later
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>

#include <torch/version.h>

#include <string>
#include <vector>

namespace {
thread_local std::string last_error;
}  // namespace

extern "C" {

void* sapicore_package_open(const char* path) {
  try {
#if TORCH_VERSION_MAJOR > 2 || TORCH_VERSION_MINOR >= 8
    // single-threaded: one runner, no container lock or thread pool around each run (as stored.py
    // loads packages with torch's loader)
    return new torch::inductor::AOTIModelPackageLoader(path, "model", true, 1);
#else
    return new torch::inductor::AOTIModelPackageLoader(path, "model");
#endif
  } catch (const std::exception& err) {
    last_error = err.what();
    return nullptr;
  }
}

const char* sapicore_package_error() { return last_error.c_str(); }

void sapicore_package_close(void* loader) { delete static_cast<torch::inductor::AOTIModelPackageLoader*>(loader); }

}  // extern "C"

namespace {
std::vector<at::Tensor> run_package(int64_t loader, std::vector<at::Tensor> inputs) {
  TORCH_CHECK(loader != 0, "run_package: no package loaded (sapicore_package_open failed)");
  return reinterpret_cast<torch::inductor::AOTIModelPackageLoader*>(loader)->run(inputs);
}
}  // namespace

TORCH_LIBRARY_FRAGMENT(sapicore, m) { m.def("run_package(int loader, Tensor[] inputs) -> Tensor[]", &run_package); }
#endif
