# The functions a lesson's CMakeLists.txt and tests/CMakeLists.txt call: a lesson, its test and its twin
# join the build through mp_add_lesson(); every other test through mp_add_test().

function(mp_use_pch target)
  if(MP_USE_PCH)
    target_precompile_headers(${target} REUSE_FROM mp_pch)
  endif()
endfunction()

# mp_skip_lesson(reason): a lesson this configuration cannot build, said once here and by the tour.
function(mp_skip_lesson reason)
  get_filename_component(lesson ${CMAKE_CURRENT_SOURCE_DIR} NAME)
  message(STATUS "Lesson ${lesson}: skipped, ${reason}")
  set_property(GLOBAL APPEND PROPERTY MP_SKIPPED_LESSONS "skipped ${lesson} ${reason}")
endfunction()

# mp_add_test(name SOURCES file.cpp... [LESSONS NN_name...] [DEFINITIONS NAME=value...]): a GoogleTest
# executable bin/<name>, its tests discovered by ctest with the label "unit". It runs in the build folder
# and is built after the LESSONS whose binaries it drives, linking their parts.
function(mp_add_test name)
  cmake_parse_arguments(ARG "" "" "SOURCES;LESSONS;DEFINITIONS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE common mp_testing)
  target_compile_definitions(${name} PRIVATE ${ARG_DEFINITIONS})
  foreach(lesson IN LISTS ARG_LESSONS)
    add_dependencies(${name} ${lesson})
    if(TARGET ${lesson}_parts)
      target_link_libraries(${name} PRIVATE ${lesson}_parts)
    endif()
  endforeach()
  mp_use_pch(${name})
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 WORKING_DIRECTORY ${CMAKE_BINARY_DIR}
                       PROPERTIES LABELS "unit")
endfunction()

# mp_add_lesson([WHOLE_COMMON] [LIBRARY name SOURCES file.cpp... [CUDA_SOURCES file.cu...]]), called from
# lessons/NN_name/CMakeLists.txt: the folder's main.cpp (with its other .cpp files) becomes bin/NN_name, run as
# the ctest smoke test lesson.NN_name; tests/test_name.cpp, when it exists, becomes bin/test_name; the
# Python twin data/python/NN_name.py, when it exists, is compared with the lesson by parity.NN_name.
# A lesson links common_base, or with WHOLE_COMMON all of common (weights files, training, data
# parallelism, gradient checks). With LIBRARY, SOURCES (and CUDA_SOURCES where CUDA is built) make the
# shared library build/lib/lib<name>.so, target NN_name_kernels, which the lesson and its test link and
# Python loads.
function(mp_add_lesson)
  cmake_parse_arguments(ARG "WHOLE_COMMON" "LIBRARY" "SOURCES;CUDA_SOURCES" ${ARGN})
  get_filename_component(lesson ${CMAKE_CURRENT_SOURCE_DIR} NAME)
  string(REGEX REPLACE "^[0-9][0-9]_" "" short ${lesson})
  set_property(GLOBAL APPEND PROPERTY MP_LESSONS ${lesson})
  add_executable(${lesson} main.cpp)
  set(common_part common_base)
  if(ARG_WHOLE_COMMON)
    set(common_part common)
  endif()
  target_link_libraries(${lesson} PRIVATE ${common_part})
  # The folder's other .cpp files (a lesson with a LIBRARY keeps its sources for that library) make the
  # library NN_name_parts, which the lesson and the tests that drive it link.
  set(parts "")
  if(NOT ARG_LIBRARY)
    file(GLOB parts CONFIGURE_DEPENDS *.cpp)
    list(REMOVE_ITEM parts ${CMAKE_CURRENT_SOURCE_DIR}/main.cpp)
  endif()
  if(parts)
    add_library(${lesson}_parts STATIC ${parts})
    target_link_libraries(${lesson}_parts PUBLIC ${common_part})
    mp_use_pch(${lesson}_parts)
    target_link_libraries(${lesson} PRIVATE ${lesson}_parts)
  endif()
  if(ARG_LIBRARY)
    set(sources ${ARG_SOURCES})
    if(MP_CUDA)
      list(APPEND sources ${ARG_CUDA_SOURCES})
    endif()
    add_library(${lesson}_kernels SHARED ${sources})
    set_target_properties(${lesson}_kernels PROPERTIES OUTPUT_NAME ${ARG_LIBRARY}
                          LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/lib)
    target_include_directories(${lesson}_kernels PUBLIC ${CMAKE_SOURCE_DIR})
    target_link_libraries(${lesson}_kernels PUBLIC ${TORCH_LIBRARIES})
    if(MP_CUDA AND ARG_CUDA_SOURCES)
      target_compile_definitions(${lesson}_kernels PUBLIC MP_HAVE_CUDA_KERNEL=1)
    endif()
    target_link_libraries(${lesson} PRIVATE ${lesson}_kernels)
  endif()
  mp_use_pch(${lesson})
  add_test(NAME lesson.${lesson} COMMAND ${lesson} --out-dir ${CMAKE_BINARY_DIR}/lesson-output/${lesson}
           WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
  set_tests_properties(lesson.${lesson} PROPERTIES LABELS "lesson")
  if(NOT mp_with_tests)
    return()
  endif()

  if(EXISTS ${CMAKE_SOURCE_DIR}/tests/test_${short}.cpp)
    mp_add_test(test_${short} SOURCES ${CMAKE_SOURCE_DIR}/tests/test_${short}.cpp LESSONS ${lesson}
                DEFINITIONS MP_LESSON_BINARY="$<TARGET_FILE:${lesson}>")
    if(TARGET ${lesson}_kernels)
      target_link_libraries(test_${short} PRIVATE ${lesson}_kernels)
    endif()
  endif()
  set(twin ${CMAKE_SOURCE_DIR}/data/python/${lesson}.py)
  if(EXISTS ${twin})
    add_test(NAME parity.${lesson}
             COMMAND ${MP_PYTHON} ${CMAKE_SOURCE_DIR}/data/python/parity_check.py $<TARGET_FILE:${lesson}> ${twin}
                     ${CMAKE_BINARY_DIR}/parity/${lesson}
             WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
    # Exit status 77 means python3-torch is missing: reported as skipped, never as passed.
    set_tests_properties(parity.${lesson} PROPERTIES LABELS "parity" SKIP_RETURN_CODE 77)
  endif()
endfunction()

# The lessons this build has, in order, those it skips with the reason, and the install set that would let
# it build one it skips: scripts/tour.sh reads it.
function(mp_write_lesson_list)
  get_property(built GLOBAL PROPERTY MP_LESSONS)
  get_property(skipped GLOBAL PROPERTY MP_SKIPPED_LESSONS)
  list(TRANSFORM built PREPEND "built ")
  list(APPEND built ${skipped})
  list(JOIN built "\n" text)
  file(WRITE ${CMAKE_BINARY_DIR}/mp-lessons.txt "${text}\n")
endfunction()
