// The bt86 executable; everything happens in cli.cpp so tests can reach it.
#include "monitor/cli.h"

int main(int argc, char** argv) {
  return bt86::bt86_main(argc, argv);
}
