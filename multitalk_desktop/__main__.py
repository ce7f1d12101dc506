from multitalk_desktop.cli import main

raise SystemExit(main())
