# Regenerates xtask/testdata/kunit_counts.txt: kunit.py's counts for every log in the
# kernel's tools/testing/kunit/test_data. Usage: python3 xtask/testdata/kunit_counts.py <unpacked linux source> > xtask/testdata/kunit_counts.txt
import os, sys
src = sys.argv[1]
sys.path.insert(0, os.path.join(src, 'tools/testing/kunit'))
import kunit_parser, kunit_printer
data = os.path.join(src, 'tools/testing/kunit/test_data')
printer = kunit_printer.Printer(print=False)
for name in sorted(os.listdir(data)):
    if not name.endswith('.log'):
        continue
    with open(os.path.join(data, name), errors='replace') as f:
        test = kunit_parser.parse_run_tests(f.readlines(), printer)
    c = test.counts
    print(f'{name} passed={c.passed} failed={c.failed} crashed={c.crashed} skipped={c.skipped} errors={c.errors}')
