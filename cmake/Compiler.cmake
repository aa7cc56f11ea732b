# clang when installed (scripts/install-deps.sh installs it), unless a compiler was chosen. Every unit
# includes LibTorch's headers through one precompiled header; GCC redoes the header's pending template
# instantiations in every unit that uses it (about 5 s each here), while clang does them once, when the
# header is built (-fpch-instantiate-templates, which CMake adds). One lesson's main.cpp compiles in
# about 5 s with clang against 17 s with GCC. Pass -DMP_PREFER_CLANG=OFF (or set CXX) to keep GCC.
option(MP_PREFER_CLANG "Compile with clang when it is installed and no compiler was chosen" ON)
if(MP_PREFER_CLANG AND NOT DEFINED CMAKE_CXX_COMPILER AND NOT DEFINED ENV{CXX})
  find_program(MP_CLANGXX clang++)
  if(MP_CLANGXX)
    set(CMAKE_CXX_COMPILER ${MP_CLANGXX})
  endif()
endif()
