from pmrl_bench.cli import main

raise SystemExit(main())
