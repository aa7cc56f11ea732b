# Writes the header that holds the SHA-1 of each package the build made (cmake -DDIR=... -DOUT=... -P):
# lesson 14 loads a package only when its bytes are these.
file(SHA1 ${DIR}/mlp.pt2 mlp)
file(SHA1 ${DIR}/fixed_hidden_mlp.pt2 fixed)
file(SHA1 ${DIR}/fused_mlp.pt2 fused)
file(WRITE ${OUT}.part "#pragma once\n// Made by the build (lessons/14_export/packages.cmake), with the packages.\n"
     "#define MP_MLP_PACKAGE_SHA1 \"${mlp}\"\n#define MP_FIXED_PACKAGE_SHA1 \"${fixed}\"\n"
     "#define MP_FUSED_PACKAGE_SHA1 \"${fused}\"\n")
file(RENAME ${OUT}.part ${OUT})
