// The Catch2 main shared by every CPU test suite.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
