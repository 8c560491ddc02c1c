# The two commands a new machine needs: `make book` and `make test` (see README.md).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PROFILE ?= cpu-full

# The checksum-verified CIFAR-10 copy beside the project on the reference machines; elsewhere the
# data comes from ELRT_DATA_DIR, ./data, or the official download (see README.md).
SHARED_CIFAR := $(abspath ../shared/data/cifar10)
ifneq ($(wildcard $(SHARED_CIFAR)/MD5SUMS),)
export ELRT_DATA_DIR ?= $(SHARED_CIFAR)
endif

# The tests run on one pytest-xdist worker a core, a whole test module to a worker (so that a module's
# expensive fixture, such as the smoke book, is built once), the longest modules first (tests/conftest.py).
PYTEST := $(BIN)/pytest -n auto --dist loadfile --no-loadscope-reorder

.PHONY: test test-quick lint book reproduce lab clean-book

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || { $(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "make: the pinned packages need Python 3.11 or newer; run make PYTHON=python3.11 (or newer)")' && $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev,bench]'
	touch $(STAMP)

# The browser check of the book (tests/test_browser.py, and the smoke book in tests/test_study_book.py)
# runs wherever Chromium is found; where it is not, this says so in one line (CI installs Chromium).
test: lint
	@$(BIN)/python -c "import sys; sys.path.insert(0, 'tests'); import book_browser as b; why = b.missing_requirement(); why and print('make test: the browser check of the book is SKIPPED:', why)"
	$(PYTEST)

# The edit-test loop: every test not marked slow (no training run, notebook, book build or browser).
test-quick: lint
	$(PYTEST) -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check elrt_core tests
	$(BIN)/ruff format --check elrt_core tests

book: $(STAMP)
	$(BIN)/elrt reproduce --profile cpu-full --reuse-only
	$(BIN)/jupyter-book build --all -W --keep-going .

reproduce: $(STAMP)
	$(BIN)/elrt reproduce --profile $(PROFILE)

lab: $(STAMP)
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev,lab]'
	$(BIN)/jupyter lab notebooks/

clean-book:
	rm -rf _build book/generated
