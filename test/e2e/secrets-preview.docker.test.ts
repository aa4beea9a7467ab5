import { secretsPreviewSuite } from "./suites/secrets-preview.ts";

secretsPreviewSuite("docker");
