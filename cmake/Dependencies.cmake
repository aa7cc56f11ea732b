# What the suite builds against: LibTorch (and the C++ standard it asks for), fmt, CLI11, nlohmann/json,
# libdeflate, the Python that is the reference, and CUDA where LibTorch has it.
# A CUDA build of LibTorch compiles CUDA sources for the GPU it finds, or, with none, for a list of its own
# that starts at architectures CUDA 13 no longer supports; with no GPU to ask, Ampere and Hopper.
execute_process(COMMAND nvidia-smi -L RESULT_VARIABLE mp_no_gpu OUTPUT_QUIET ERROR_QUIET)
if(NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST} AND NOT mp_no_gpu EQUAL 0)
  set(ENV{TORCH_CUDA_ARCH_LIST} "8.0;9.0")
endif()
find_package(Torch REQUIRED)
find_package(Threads REQUIRED)
# A pip torch loads the CUDA libraries of its nvidia-* wheels. A CUDA toolkit on the same machine may carry
# older copies of them (NCCL), which the linker would otherwise find first and fail on.
file(GLOB mp_nvidia_libs LIST_DIRECTORIES true "${TORCH_INSTALL_PREFIX}/../nvidia/*/lib")
foreach(mp_dir IN LISTS mp_nvidia_libs)
  add_link_options("LINKER:-rpath-link,${mp_dir}")
endforeach()

# The C++ standard is the one LibTorch asks for, decided here once. LibTorch 1.13 and 2.x need C++17; a
# LibTorch that needs more says so either on its CMake target (INTERFACE_COMPILE_FEATURES cxx_std_NN) or
# in its headers, which stop with #error when __cplusplus is below what they need. Both are read; C++17
# when neither asks for more.
set(MP_CXX_STANDARD 17)
foreach(mp_torch_target torch torch_cpu)
  if(TARGET ${mp_torch_target})
    get_target_property(mp_features ${mp_torch_target} INTERFACE_COMPILE_FEATURES)
    foreach(mp_feature IN LISTS mp_features)
      if(mp_feature MATCHES "^cxx_std_([0-9]+)$" AND CMAKE_MATCH_1 GREATER MP_CXX_STANDARD)
        set(MP_CXX_STANDARD ${CMAKE_MATCH_1})
      endif()
    endforeach()
  endif()
endforeach()
foreach(mp_dir IN LISTS TORCH_INCLUDE_DIRS)
  foreach(mp_header c10/util/C++17.h c10/macros/Macros.h)
    if(EXISTS ${mp_dir}/${mp_header})
      file(STRINGS ${mp_dir}/${mp_header} mp_needs REGEX "__cplusplus < 202002L")
      if(mp_needs AND MP_CXX_STANDARD LESS 20)
        set(MP_CXX_STANDARD 20)
      endif()
    endif()
  endforeach()
endforeach()
set(CMAKE_CXX_STANDARD ${MP_CXX_STANDARD})
set(CMAKE_CXX_STANDARD_REQUIRED ON)
set(CMAKE_CXX_EXTENSIONS OFF)
message(STATUS "LibTorch ${Torch_VERSION}: C++${CMAKE_CXX_STANDARD}")

# A machine without the packages (the GPU machine) uses header-only copies that
# scripts/gpu-prepare.sh gathers into .deps/.
set(MP_DEPS_DIR "${CMAKE_SOURCE_DIR}/.deps" CACHE PATH "Folder with carried copies of fmt, CLI11 and nlohmann/json")
# mp_header_only(package alias [definitions...]): the package when installed, else the copy in .deps.
function(mp_header_only package alias)
  find_package(${package} QUIET)
  if(NOT ${package}_FOUND)
    add_library(${package}_header_only INTERFACE)
    target_include_directories(${package}_header_only SYSTEM INTERFACE ${MP_DEPS_DIR}/include)
    target_compile_definitions(${package}_header_only INTERFACE ${ARGN})
    add_library(${alias} ALIAS ${package}_header_only)
    message(STATUS "${package}: header-only copy from ${MP_DEPS_DIR}")
  endif()
endfunction()
# A pip torch ships its own fmt headers, ahead of the system's on the include path: then fmt is used
# header-only from them, so that no code is compiled against one fmt and linked against another. The fmt
# in a system folder (Debian's LibTorch is in /usr/include) is the system's package, and is linked: header-only,
# every unit that formats compiles fmt's formatting core again, about 2 s each with clang at -O3.
foreach(mp_dir IN LISTS TORCH_INCLUDE_DIRS)
  if(EXISTS ${mp_dir}/fmt/format.h AND NOT mp_dir IN_LIST CMAKE_CXX_IMPLICIT_INCLUDE_DIRECTORIES
     AND NOT TARGET fmt::fmt)
    add_library(mp_torch_fmt INTERFACE)
    target_compile_definitions(mp_torch_fmt INTERFACE FMT_HEADER_ONLY=1)
    add_library(fmt::fmt ALIAS mp_torch_fmt)
    message(STATUS "fmt: header-only, LibTorch's copy in ${mp_dir}")
  endif()
endforeach()
if(NOT TARGET fmt::fmt)
  mp_header_only(fmt fmt::fmt FMT_HEADER_ONLY=1)
endif()
mp_header_only(CLI11 CLI11::CLI11)
mp_header_only(nlohmann_json nlohmann_json::nlohmann_json)

# libdeflate's CRC-32 (about 11 GB/s here, a plain table 0.5 GB/s) checks every record before it is used.
find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
  pkg_check_modules(LIBDEFLATE QUIET IMPORTED_TARGET libdeflate)
endif()

# The Python reference: .venv (Debian's Python and PyTorch, with safetensors from PyPI, made by
# scripts/install-deps.sh), else Debian's own; -DMP_PYTHON names another.
find_program(MP_PYTHON NAMES python3 PATHS ${CMAKE_SOURCE_DIR}/.venv/bin /usr/bin NO_DEFAULT_PATH)
if(NOT MP_PYTHON)
  find_program(MP_PYTHON python3)
endif()
if(MP_PYTHON STREQUAL "/usr/bin/python3" AND EXISTS ${CMAKE_SOURCE_DIR}/.venv/bin/python3)
  set(MP_PYTHON ${CMAKE_SOURCE_DIR}/.venv/bin/python3 CACHE FILEPATH "" FORCE)
endif()

# CUDA sources are compiled only where LibTorch was built with CUDA and a CUDA compiler is installed.
set(MP_CUDA OFF)
if(TORCH_CUDA_LIBRARIES)
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      # "native" needs a GPU to ask; a machine with the toolkit and no GPU (the development machine)
      # compiles for Ampere and Hopper instead.
      if(CMAKE_VERSION VERSION_GREATER_EQUAL 3.24 AND mp_no_gpu EQUAL 0)
        set(CMAKE_CUDA_ARCHITECTURES native)
      else()
        set(CMAKE_CUDA_ARCHITECTURES 80 90)
      endif()
    endif()
    enable_language(CUDA)
    if(NOT DEFINED CMAKE_CUDA${CMAKE_CXX_STANDARD}_STANDARD_COMPILE_OPTION)
      # CMake before 3.26 (Debian 12 has 3.25) does not know nvcc's flag for C++20, which LibTorch 2.13 and
      # later ask for: it is nvcc's usual one.
      set(CMAKE_CUDA${CMAKE_CXX_STANDARD}_STANDARD_COMPILE_OPTION "-std=c++${CMAKE_CXX_STANDARD}")
      set(CMAKE_CUDA${CMAKE_CXX_STANDARD}_EXTENSION_COMPILE_OPTION "-std=c++${CMAKE_CXX_STANDARD}")
      list(APPEND CMAKE_CUDA_COMPILE_FEATURES cuda_std_${CMAKE_CXX_STANDARD})
    endif()
    set(CMAKE_CUDA_STANDARD ${CMAKE_CXX_STANDARD})
    set(MP_CUDA ON)
  endif()
endif()
message(STATUS "Hand-written CUDA kernels: ${MP_CUDA}")
