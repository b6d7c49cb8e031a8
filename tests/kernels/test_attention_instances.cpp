// The checked-in attention instances (kernels/generated/attention_*.cu) are
// exactly what scripts/gen_attention_instances.py writes, so nobody edits a
// generated file by hand or forgets to regenerate after changing the list.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <string>

TEST_CASE("generated attention instances are up to date", "[cpu][attention]") {
  const std::string cmd =
      std::string(SYNTHPERT_REFERENCE_PYTHON " ") + SYNTHPERT_SOURCE_DIR + "/scripts/gen_attention_instances.py --check";
  CHECK(std::system(cmd.c_str()) == 0);
}
