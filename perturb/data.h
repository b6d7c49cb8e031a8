// PerturbQA rows: one (cell line, perturbation, target gene) with its
// three-class outcome, built from {cell}-de.csv and {cell}-dir.csv.
//
// de label 0 -> not differentially expressed; de 1 and dir 1 -> upregulated;
// de 1 and dir 0 -> downregulated; de 1 without a dir row -> not differentially
// expressed, counted as inconsistent.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "perturb/labels.h"

namespace synthpert::perturb {

const std::vector<std::string>& cell_lines();  // k562, rpe1, hepg2, jurkat

// What a prompt may say about a row beyond its names, counted from training
// rows by perturb/evidence.h; empty until attached ("none" in prompts).
struct RowContext {
  std::string evidence;      // the (pert, gene) pair's outcomes in other cell lines
  std::string pert_effect;   // the pert's DE and up shares in other cell lines
  std::string gene_profile;  // the gene's DE and up shares in other cell lines
  std::string gene_here;     // the gene's DE and up shares in its own cell line (default splits)
  std::string gene_all;      // the gene's DE and up shares in every cell line
  std::string gene_similar;  // the gene's outcomes under the most similar perts of its line (default splits)
};

struct Row {
  std::string cell_type;  // lower-case cell line id, e.g. "rpe1"
  std::string pert;       // knocked-down gene
  std::string gene;       // target gene whose expression is measured
  Label label = Label::kNde;
  bool test = false;      // the CSV split column: train or test
  RowContext context;
};

struct CellData {
  std::string cell_type;
  std::vector<Row> rows;  // in de.csv order
  int64_t inconsistent = 0;  // de 1 rows with no dir row
  int64_t dir_without_de = 0;  // dir rows whose pair is missing or not DE in de.csv
};

// The data folder: `flag` if non-empty, else $PERTURBQA_DIR, else
// ../shared/perturbqa (relative to the working directory). Throws InputError
// naming what was tried when none has the CSVs.
std::string resolve_data_dir(const std::string& flag);

// Refuses (InputError) an output path that is one of the data folder's CSVs,
// which writing it would destroy.
void check_not_data_file(const std::string& out, const std::string& dir, const std::string& flag);

// Loads one cell line; malformed files are InputErrors naming file and line.
CellData load_cell_line(const std::string& dir, const std::string& cell_type);

}  // namespace synthpert::perturb
