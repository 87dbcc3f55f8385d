from facmon.cli import main

raise SystemExit(main())
