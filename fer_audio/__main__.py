from fer_audio.cli import main

raise SystemExit(main())
