# bpf_object(NAME SOURCE [DEPENDS header...])
#
# Compiles SOURCE with clang -target bpf against ${ZERNEL_VMLINUX_H} and generates a libbpf
# skeleton (NAME.skel.h, struct NAME_bpf) that embeds the object, exposed as the INTERFACE
# target NAME_skel. A function, not a macro, so nothing leaks between calls.
#
# bpftool 7.5 writes `map->link = ...` into skeletons for struct_ops maps; libbpf 1.4's
# struct bpf_map_skeleton has no such member. That one line is removed and the loader
# attaches the struct_ops map itself (bpf_map__attach_struct_ops).
function(bpf_object name source)
  cmake_parse_arguments(ARG "" "" "DEPENDS" ${ARGN})
  set(obj ${CMAKE_CURRENT_BINARY_DIR}/${name}.bpf.o)
  set(skel ${CMAKE_CURRENT_BINARY_DIR}/${name}.skel.h)
  get_filename_component(vmlinux_dir ${ZERNEL_VMLINUX_H} DIRECTORY)

  add_custom_command(
    OUTPUT ${obj}
    COMMAND ${ZERNEL_BPF_CLANG} -g -O2 -target bpf -mcpu=v3 -D__TARGET_ARCH_x86
            # vmlinux.h of 7.x kernels has anonymous tagged members that clang drops
            # silently (wrong layouts) unless Microsoft extensions are on.
            -fms-extensions -Wno-microsoft-anon-tag
            -Wall -Werror
            -I${vmlinux_dir} -I${PROJECT_SOURCE_DIR}/bpf_core -I${CMAKE_CURRENT_SOURCE_DIR}
            -I${LIBBPF_INCLUDEDIR}
            -c ${CMAKE_CURRENT_SOURCE_DIR}/${source} -o ${obj}
    DEPENDS ${source} ${ZERNEL_VMLINUX_H} ${ARG_DEPENDS}
    COMMENT "BPF ${source}"
    VERBATIM)

  add_custom_command(
    OUTPUT ${skel}
    COMMAND ${ZERNEL_BPFTOOL} gen skeleton ${obj} name ${name}_bpf > ${skel}.tmp
    COMMAND sed -i "/map->link = /d" ${skel}.tmp
    COMMAND ${CMAKE_COMMAND} -E rename ${skel}.tmp ${skel}
    DEPENDS ${obj}
    COMMENT "BPF skeleton ${name}.skel.h"
    VERBATIM)

  add_custom_target(${name}_skel_gen DEPENDS ${skel} ${obj})
  add_library(${name}_skel INTERFACE)
  add_dependencies(${name}_skel ${name}_skel_gen)
  target_include_directories(${name}_skel INTERFACE ${CMAKE_CURRENT_BINARY_DIR})
  set_property(TARGET ${name}_skel PROPERTY ZERNEL_BPF_OBJECT ${obj})
endfunction()
